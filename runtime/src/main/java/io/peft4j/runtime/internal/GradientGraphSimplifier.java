package io.peft4j.runtime.internal;

import io.peft4j.runtime.GraphSimplification;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.autodiff.samediff.internal.Variable;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.impl.controlflow.compat.BaseCompatOp;
import org.nd4j.linalg.api.ops.impl.shape.ExpandDims;
import org.nd4j.linalg.api.ops.impl.shape.OnesLike;
import org.nd4j.linalg.api.ops.impl.shape.Permute;
import org.nd4j.linalg.api.ops.impl.shape.Rank;
import org.nd4j.linalg.api.ops.impl.shape.Reshape;
import org.nd4j.linalg.api.ops.impl.shape.Shape;
import org.nd4j.linalg.api.ops.impl.shape.Size;
import org.nd4j.linalg.api.ops.impl.shape.SizeAt;
import org.nd4j.linalg.api.ops.impl.shape.Squeeze;
import org.nd4j.linalg.api.ops.impl.shape.StridedSlice;
import org.nd4j.linalg.api.ops.impl.shape.Transpose;
import org.nd4j.linalg.api.ops.impl.shape.ZerosLike;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;
import org.nd4j.linalg.api.ops.impl.transforms.same.Identity;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Simplifies a SameDiff gradient function in place so that a training step runs fewer or cheaper
 * ops, with every value it computes unchanged (to rounding, for the GELU rewrite).
 *
 * <p>Graphs written the ordinary way carry ops whose results another op already has. A layer that
 * flattens {@code [batch, sequence, d]} for a product and restores the shape afterwards asks for
 * {@code shape_of} of the same activation in every layer, and SameDiff's differentiation adds a
 * {@code shape_of} and {@code reshape} per such op, an {@code identity} per gradient passed on
 * unchanged, and a {@code zeroslike(x)} added to the gradient of every activation that a shape op
 * also reads (shape ops have no gradient). Four rewrites, repeated until none applies:
 * <ul>
 *   <li>a pure shape op ({@code shape_of}, {@code reshape}, {@code zeroslike}, {@code permute}, ...)
 *       with the same class, inputs and arguments as an earlier one: its readers read the earlier one's
 *       output;</li>
 *   <li>an {@code identity}: its readers read its input;</li>
 *   <li>a sum {@code g + zeroslike(x)} on the chain of sums that SameDiff builds for {@code x}'s
 *       gradient (so {@code g} has {@code x}'s shape): its readers read {@code g};</li>
 *   <li>a {@code reshape} of a {@code reshape} in the same order: it reshapes the first one's input.</li>
 * </ul>
 * Five rewrites come first: softmax gradients are formed from the softmax's output instead of
 * recomputing it ({@link SoftmaxGradientFromOutput}); given the first batch, a broadcast division's
 * from its quotient ({@link DivisionGradientFromOutput}), a sparse softmax cross-entropy with its
 * gradient from one exponential pass ({@link SparseCrossEntropyFromExponentials}) and a broadcast
 * sum's, difference's or product's with element-wise ops and one sum, and the gradients of a sum of
 * operands of one shape passed on as they come ({@link BroadcastOperandGradients});
 * and, on the CPU,
 * ND4J's {@code gelu} and its derivative share one sigmoid ({@link SigmoidGelu}), one transcendental
 * kernel fewer per GELU, unless peft4j's kernels will run both in replayed steps. Nothing is deleted ({@link GraphWiring}): SameDiff runs only the ops that a step's outputs need, so
 * an op nobody reads any more is skipped. Graphs with loops or conditionals (SameDiff's frame ops)
 * are left alone. Random ops are never merged: only the listed shape ops are.
 */
public final class GradientGraphSimplifier {
    private static final int MAX_ROUNDS = 16;
    private static final int MAX_SUM_CHAIN = 1_000;
    private static final Set<Class<?>> PURE_SHAPE_OPS = Set.of(Shape.class, Reshape.class, ZerosLike.class, OnesLike.class,
            Permute.class, Transpose.class, StridedSlice.class, ExpandDims.class, Squeeze.class, Size.class, SizeAt.class,
            Rank.class);

    private final SameDiff forward;
    private final GradientGraph gradients;
    private final SameDiff graph;
    private final GraphWiring wiring;
    private final Set<String> required;
    private int duplicates;
    private int identities;
    private int zeroSums;
    private int reshapeChains;

    private GradientGraphSimplifier(SameDiff forward, GradientGraph gradients) {
        this.forward = forward;
        this.gradients = gradients;
        this.graph = gradients.sameDiff();
        this.wiring = new GraphWiring(graph);
        this.required = gradients.requiredOutputs();
    }

    /**
     * Builds {@code sameDiff}'s gradient function if it has none yet and simplifies it. Idempotent:
     * a second call finds nothing to do. Call it after freezing, before training.
     */
    public static GraphSimplification simplify(SameDiff sameDiff) {
        return simplify(sameDiff, null);
    }

    /**
     * As {@link #simplify(SameDiff)}, and with {@code firstBatch} (placeholder name to array; asked for
     * only when a rewrite needs activation shapes) the division gradients too
     * ({@link DivisionGradientFromOutput}). {@code null} leaves divisions alone.
     */
    public static GraphSimplification simplify(SameDiff sameDiff, Supplier<Map<String, INDArray>> firstBatch) {
        return simplify(sameDiff, firstBatch, false);
    }

    /**
     * As {@link #simplify(SameDiff, Supplier)}; {@code replayKernels} says that this process has peft4j's
     * kernels ({@link ReplayKernels}), which compute an fp32 {@code gelu} and its derivative in one pass
     * each when a step is replayed: then {@link SigmoidGelu} leaves those as they are (its products and
     * scalar ops cost more than the two passes; BENCHMARKS.md), in graphs that can be replayed.
     */
    public static GraphSimplification simplify(SameDiff sameDiff, Supplier<Map<String, INDArray>> firstBatch, boolean replayKernels) {
        return new GradientGraphSimplifier(sameDiff, GradientGraph.of(sameDiff)).run(firstBatch, replayKernels);
    }

    private GraphSimplification run(Supplier<Map<String, INDArray>> firstBatch, boolean replayKernels) {
        int before = opsPerStep();
        if (graph.getOps().values().stream().anyMatch(op -> op.getOp() instanceof BaseCompatOp)) {
            return GraphSimplification.none(before);
        }
        int gelus = Nd4j.getEnvironment().isCPU()
                ? SigmoidGelu.rewrite(graph, wiring, replayKernels && RecordedStep.replayable(graph, true)) : 0;
        int softmaxes = SoftmaxGradientFromOutput.rewrite(graph, wiring);
        int divisions = firstBatch == null ? 0 : DivisionGradientFromOutput.rewrite(gradients, wiring, forward, firstBatch);
        int crossEntropies = firstBatch == null ? 0 : SparseCrossEntropyFromExponentials.rewrite(gradients, wiring, forward, firstBatch);
        BroadcastOperandGradients.Rewrites broadcasts = firstBatch == null ? new BroadcastOperandGradients.Rewrites(0, 0)
                : BroadcastOperandGradients.rewrite(gradients, wiring, forward, firstBatch);
        for (int round = 0; round < MAX_ROUNDS && simplifyOnce(); round++) {
            // every round can expose more: merged inputs make their readers duplicates, bypassed identities make reshape chains
        }
        return new GraphSimplification(before, opsPerStep(), duplicates, identities, zeroSums, reshapeChains, gelus, softmaxes, divisions,
                crossEntropies, broadcasts.summed(), broadcasts.passedOn());
    }

    /** One sweep of every rewrite over the graph; true if anything changed. */
    private boolean simplifyOnce() {
        boolean changed = false;
        Map<String, SameDiffOp> firstByKey = new HashMap<>();
        for (SameDiffOp op : List.copyOf(graph.getOps().values())) {
            DifferentialFunction function = op.getOp();
            if (function.getClass() == Identity.class) {
                changed |= bypassIdentity(op);
            } else if (function.getClass() == AddOp.class) {
                changed |= bypassZeroSum(op);
            } else if (function.getClass() == Reshape.class) {
                changed |= shortenReshapeChain(op);
            }
            if (PURE_SHAPE_OPS.contains(function.getClass())) {
                changed |= mergeDuplicate(op, firstByKey);
            }
        }
        return changed;
    }

    private boolean bypassIdentity(SameDiffOp op) {
        if (op.getInputsToOp().size() != 1 || op.getOutputsOfOp().size() != 1) {
            return false;
        }
        if (wiring.moveReaders(op.getOutputsOfOp().get(0), op.getInputsToOp().get(0)) > 0) {
            identities++;
            return true;
        }
        return false;
    }

    private boolean bypassZeroSum(SameDiffOp op) {
        List<String> inputs = op.getInputsToOp();
        if (inputs.size() != 2 || op.getOutputsOfOp().size() != 1) {
            return false;
        }
        String sum = op.getOutputsOfOp().get(0);
        for (int zeros = 0; zeros < 2; zeros++) {
            SameDiffOp producer = wiring.producer(inputs.get(zeros));
            if (producer != null && producer.getOp().getClass() == ZerosLike.class
                    && sumsGradientOf(sum, producer.getInputsToOp().get(0))
                    && wiring.moveReaders(sum, inputs.get(1 - zeros)) > 0) {
                zeroSums++;
                return true;
            }
        }
        return false;
    }

    /**
     * True when {@code sum} flows only through sums into the gradient of {@code variable}: SameDiff adds
     * up the gradient contributions of a variable's readers that way, each of the variable's shape.
     */
    private boolean sumsGradientOf(String sum, String variable) {
        Variable known = graph.getVariables().get(variable);
        SDVariable gradient = known == null ? null : known.getGradient();
        if (gradient == null) {
            return false;
        }
        String current = sum;
        for (int step = 0; step < MAX_SUM_CHAIN; step++) {
            if (current.equals(gradient.name())) {
                return true;
            }
            List<SameDiffOp> readers = wiring.readers(current);
            if (readers.size() != 1 || readers.get(0).getOp().getClass() != AddOp.class || required.contains(current)) {
                return false;
            }
            current = readers.get(0).getOutputsOfOp().get(0);
        }
        return false;
    }

    private boolean shortenReshapeChain(SameDiffOp op) {
        SameDiffOp inner = wiring.producer(op.getInputsToOp().get(0));
        if (inner == null || inner.getOp().getClass() != Reshape.class || !sameOrder(op, inner)) {
            return false;
        }
        wiring.replaceInput(op, 0, inner.getInputsToOp().get(0));
        reshapeChains++;
        return true;
    }

    /** Both reshapes state their order ('c' or 'f', as −99 or −102) and it is the same. */
    private static boolean sameOrder(SameDiffOp outer, SameDiffOp inner) {
        long[] outerArgs = ((Reshape) outer.getOp()).iArgs();
        long[] innerArgs = ((Reshape) inner.getOp()).iArgs();
        return outerArgs.length > 0 && innerArgs.length > 0 && outerArgs[0] == innerArgs[0]
                && (outerArgs[0] == -'c' || outerArgs[0] == -'f');
    }

    private boolean mergeDuplicate(SameDiffOp op, Map<String, SameDiffOp> firstByKey) {
        String key = key(op);
        if (key == null) {
            return false;
        }
        SameDiffOp first = firstByKey.putIfAbsent(key, op);
        if (first == null) {
            return false;
        }
        int moved = 0;
        for (int i = 0; i < op.getOutputsOfOp().size(); i++) {
            moved += wiring.moveReaders(op.getOutputsOfOp().get(i), first.getOutputsOfOp().get(i));
        }
        if (moved > 0) {
            duplicates++;
            return true;
        }
        return false;
    }

    /** Class, inputs, arguments and properties: equal keys compute equal outputs. {@code null} when not comparable. */
    private static String key(SameDiffOp op) {
        if (!(op.getOp() instanceof DynamicCustomOp custom)) {
            return null;
        }
        try {
            Map<String, Object> properties = custom.propertiesForFunction();
            StringBuilder key = new StringBuilder(custom.getClass().getName()).append(op.getInputsToOp())
                    .append(Arrays.toString(custom.iArgs())).append(Arrays.toString(custom.tArgs()))
                    .append(Arrays.toString(custom.bArgs())).append(Arrays.toString(custom.dArgs()))
                    .append(op.getOutputsOfOp().size());
            if (properties != null) {
                properties.entrySet().stream().sorted(Map.Entry.comparingByKey())
                        .forEach(entry -> key.append(entry.getKey()).append('=').append(Arrays.deepToString(new Object[] {entry.getValue()})));
            }
            return key.toString();
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The ops a step runs: those the losses and the trainable variables' gradients depend on. */
    private int opsPerStep() {
        Set<String> ops = new HashSet<>();
        Set<String> seen = new HashSet<>();
        Deque<String> pending = new ArrayDeque<>(required);
        while (!pending.isEmpty()) {
            String name = pending.pop();
            if (!seen.add(name)) {
                continue;
            }
            Variable variable = graph.getVariables().get(name);
            if (variable == null) {
                continue;
            }
            addAll(pending, variable.getControlDeps());
            SameDiffOp producer = wiring.producer(name);
            if (producer != null && ops.add(producer.getName())) {
                addAll(pending, producer.getInputsToOp());
                addAll(pending, producer.getControlDeps());
                addAll(pending, producer.getVarControlDeps());
            }
        }
        return ops.size();
    }

    private static void addAll(Deque<String> pending, List<String> names) {
        if (names != null) {
            pending.addAll(names);
        }
    }
}
