package io.peft4j.runtime.cli;

import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorInfo;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code peft4j diff <dirA> <dirB>}: per layer, the largest differences between two adapters' A, B and
 * weight deltas {@code s·Bᵀ·Aᵀ} (the delta is what changes the model; A and B alone are only
 * defined up to an invertible r × r factor). Exits with 1 if the adapters differ in layers or shapes.
 */
@Command(name = "diff", mixinStandardHelpOptions = true,
        description = "Report per-layer maximum differences between two saved LoRA adapters.")
final class DiffCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "<dirA>")
    Path first;

    @Parameters(index = "1", paramLabel = "<dirB>")
    Path second;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        AdapterFiles a = AdapterFiles.open(first);
        AdapterFiles b = AdapterFiles.open(second);
        Map<String, INDArray> tensorsA = SafetensorsFile.read(a.weightsFile());
        Map<String, INDArray> tensorsB = SafetensorsFile.read(b.weightsFile());
        PrintWriter out = spec.commandLine().getOut();
        Set<String> layers = new LinkedHashSet<>(a.layers().keySet());
        layers.addAll(b.layers().keySet());
        int width = Math.max(5, layers.stream().mapToInt(String::length).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %12s  %12s  %12s%n", "layer", "max|ΔA|", "max|ΔB|", "max|Δ(s·A·B)|");
        boolean comparable = true;
        for (String layer : layers) {
            TensorInfo[] inA = a.layers().get(layer);
            TensorInfo[] inB = b.layers().get(layer);
            if (inA == null || inB == null) {
                out.printf(Locale.ROOT, "%-" + width + "s  only in %s%n", layer, inA == null ? second : first);
                comparable = false;
                continue;
            }
            if (inA[0] == null || inA[1] == null || inB[0] == null || inB[1] == null
                    || !Arrays.equals(inA[0].shape(), inB[0].shape()) || !Arrays.equals(inA[1].shape(), inB[1].shape())) {
                out.printf(Locale.ROOT, "%-" + width + "s  shapes differ: %s vs %s%n", layer, Arrays.toString(inA), Arrays.toString(inB));
                comparable = false;
                continue;
            }
            INDArray loraA1 = tensorsA.get(inA[0].name()).castTo(DataType.DOUBLE);
            INDArray loraB1 = tensorsA.get(inA[1].name()).castTo(DataType.DOUBLE);
            INDArray loraA2 = tensorsB.get(inB[0].name()).castTo(DataType.DOUBLE);
            INDArray loraB2 = tensorsB.get(inB[1].name()).castTo(DataType.DOUBLE);
            INDArray delta1 = loraB1.mmul(loraA1).muli(a.scaling(layer));
            INDArray delta2 = loraB2.mmul(loraA2).muli(b.scaling(layer));
            out.printf(Locale.ROOT, "%-" + width + "s  %12.4e  %12.4e  %12.4e%n", layer, maxAbsDifference(loraA1, loraA2),
                    maxAbsDifference(loraB1, loraB2), maxAbsDifference(delta1, delta2));
        }
        return comparable ? 0 : 1;
    }

    private static double maxAbsDifference(INDArray x, INDArray y) {
        return Transforms.abs(x.sub(y)).maxNumber().doubleValue();
    }
}
