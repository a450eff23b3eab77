package io.peft4j.runtime.lora;

import io.peft4j.runtime.Combination;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.PeftMethod;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Hugging Face PEFT's {@code add_weighted_adapter} for LoRA: the new adapter has scale 1
 * ({@code lora_alpha = r}, no rsLoRA) and every source's weight {@code w_i} and scale {@code s_i}
 * folded into its factors. Computed in fp64, stored in the weights' dtype.
 *
 * <p>Unlike PEFT, {@link Combination#SVD} decomposes {@code Σ w_i·s_i·A_i·B_i}, the weighted sum of the
 * deltas; PEFT multiplies each delta by its scale a second time there, which only agrees when every
 * scale is 1.
 */
final class LoraCombiner {

    private final LoraMethod method;
    private final AttachContext context;
    private final List<LoraAdapter> sources;
    private final List<Double> weights;
    private final Combination combination;
    private final int svdRank;

    LoraCombiner(LoraMethod method, AttachContext context, List<LoraAdapter> sources, List<Double> weights, Combination combination,
                 int svdRank) {
        this.method = method;
        this.context = context;
        this.sources = sources;
        this.weights = weights;
        // As PEFT: a single adapter can only be combined linearly (which reproduces it exactly).
        this.combination = sources.size() == 1 ? Combination.LINEAR : combination;
        this.svdRank = svdRank;
    }

    PeftMethod.Combined combine() {
        Map<String, List<Term>> byLayer = new LinkedHashMap<>();
        for (int i = 0; i < sources.size(); i++) {
            for (LoraBranch branch : sources.get(i).branches()) {
                byLayer.computeIfAbsent(branch.site().path(), path -> new ArrayList<>()).add(new Term(branch, weights.get(i)));
            }
        }
        Map<String, LoraBranch> branches = new LinkedHashMap<>();
        Map<String, Double> errors = new LinkedHashMap<>();
        try {
            byLayer.forEach((path, terms) -> {
                INDArray[] factors = switch (combination) {
                    case LINEAR -> linear(path, terms);
                    case CAT -> cat(terms);
                    case SVD -> svd(terms);
                };
                LoraSite site = terms.get(0).branch().site();
                int rank = (int) factors[0].size(1);
                LoraSettings settings = new LoraSettings(rank, rank, terms.get(0).branch().settings().dropout(), false);
                LoraBranch branch = new LoraBranch(site, context, settings, factors[0], factors[1]);
                site.add(branch);
                branches.put(path, branch);
                errors.put(path, relativeError(factors, weightedDelta(terms)));
            });
        } catch (RuntimeException e) {
            branches.values().forEach(branch -> branch.site().remove(branch));
            throw e;
        }
        return new PeftMethod.Combined(new LoraAdapter(method, context.adapterName(), branches, LoraMethod.modulePaths(context)), errors);
    }

    /** One source's branch on a layer and the user's weight for that source. */
    private record Term(LoraBranch branch, double weight) {

        /** A in fp64; may be the live factor itself, so only ever read. */
        INDArray a() {
            return branch.factorA().castTo(DataType.DOUBLE);
        }

        /** B in fp64; may be the live factor itself, so only ever read. */
        INDArray b() {
            return branch.factorB().castTo(DataType.DOUBLE);
        }

        /** {@code w·s}, the factor this source's delta enters the sum with. */
        double weightedScale() {
            return weight * branch.settings().scaling();
        }
    }

    private INDArray[] linear(String path, List<Term> terms) {
        long rank = terms.get(0).branch().settings().rank();
        if (terms.stream().anyMatch(term -> term.branch().settings().rank() != rank)) {
            throw new PeftException("Combination.LINEAR needs the same rank in every adapter, but layer '" + path + "' has ranks "
                    + terms.stream().map(term -> term.branch().adapterName() + " r = " + term.branch().settings().rank()).toList()
                    + "; use CAT or SVD");
        }
        INDArray a = null;
        INDArray b = null;
        for (Term term : terms) {
            double weighted = term.weightedScale();
            double root = Math.sqrt(Math.abs(weighted));
            // The sign goes to one factor only, or two negative weights would cancel.
            INDArray termA = term.a().mul(weighted >= 0 ? root : -root);
            INDArray termB = term.b().mul(root);
            a = a == null ? termA : a.addi(termA);
            b = b == null ? termB : b.addi(termB);
        }
        return castLike(terms, a, b);
    }

    private INDArray[] cat(List<Term> terms) {
        INDArray[] as = new INDArray[terms.size()];
        INDArray[] bs = new INDArray[terms.size()];
        for (int i = 0; i < terms.size(); i++) {
            as[i] = terms.get(i).a().mul(terms.get(i).weightedScale());
            bs[i] = terms.get(i).b();
        }
        return castLike(terms, Nd4j.hstack(as), Nd4j.vstack(bs));
    }

    private INDArray[] svd(List<Term> terms) {
        INDArray delta = weightedDelta(terms); // [in, out]
        long in = delta.size(0);
        long out = delta.size(1);
        int wanted = svdRank > 0 ? svdRank : terms.stream().mapToInt(term -> term.branch().settings().rank()).max().orElseThrow();
        int rank = (int) Math.min(wanted, Math.min(in, out));
        // As PEFT, decompose the [out, in] weight delta: U·S becomes lora_B, Vᵀ lora_A.
        INDArray matrix = delta.transpose().dup('f');
        long k = Math.min(in, out);
        INDArray s = Nd4j.create(DataType.DOUBLE, new long[] {k}, 'f');
        INDArray u = Nd4j.create(DataType.DOUBLE, new long[] {out, out}, 'f');
        INDArray vt = Nd4j.create(DataType.DOUBLE, new long[] {in, in}, 'f');
        Nd4j.getBlasWrapper().lapack().gesvd(matrix, s, u, vt);
        INDArray loraB = u.get(NDArrayIndex.all(), NDArrayIndex.interval(0, rank)).mulRowVector(s.get(NDArrayIndex.interval(0, rank)));
        INDArray loraA = vt.get(NDArrayIndex.interval(0, rank), NDArrayIndex.all());
        return castLike(terms, loraA.transpose().dup('c'), loraB.transpose().dup('c'));
    }

    /** {@code Σ w_i·s_i·A_i·B_i}, {@code [in, out]}, in fp64. */
    private static INDArray weightedDelta(List<Term> terms) {
        INDArray sum = null;
        for (Term term : terms) {
            INDArray delta = term.a().mmul(term.b()).muli(term.weightedScale());
            sum = sum == null ? delta : sum.addi(delta);
        }
        return sum;
    }

    private static double relativeError(INDArray[] factors, INDArray target) {
        double norm = target.norm2Number().doubleValue();
        INDArray approximation = factors[0].castTo(DataType.DOUBLE).mmul(factors[1].castTo(DataType.DOUBLE));
        double error = approximation.subi(target).norm2Number().doubleValue();
        return norm == 0 ? error : error / norm;
    }

    private static INDArray[] castLike(List<Term> terms, INDArray a, INDArray b) {
        DataType dtype = terms.get(0).branch().factorA().dataType();
        return new INDArray[] {a.castTo(dtype), b.castTo(dtype)};
    }
}
