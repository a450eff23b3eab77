package io.peft4j.cli;

import io.peft4j.runtime.checkpoint.RawTensor;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code peft4j diff <dirA> <dirB>}: for two adapters of one method, the largest difference of every
 * tensor and of what it changes in the model (for LoRA each layer's delta {@code s·B·A}, which is what
 * matters: A and B alone are defined only up to an invertible r × r factor). Exits with 1 if the
 * adapters differ in method, keys or shapes.
 */
@Command(name = "diff", mixinStandardHelpOptions = true,
        description = "Report the largest differences between two saved adapters, tensor by tensor and effect by effect.")
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
        PrintWriter out = spec.commandLine().getOut();
        if (!a.peftType().equals(b.peftType())) {
            out.printf(Locale.ROOT, "different methods: %s is %s, %s is %s%n", first, a.peftType(), second, b.peftType());
            return 1;
        }
        Map<String, RawTensor> tensorsA = SafetensorsFile.readRaw(a.weightsFile(), true);
        Map<String, RawTensor> tensorsB = SafetensorsFile.readRaw(b.weightsFile(), true);
        Map<String, double[]> rows = new LinkedHashMap<>();
        boolean comparable = pair(tensorsA, tensorsB, rows, out);
        if (a.method().isPresent()) {
            comparable &= pair(a.method().get().effects(a.config(), tensorsA), b.method().get().effects(b.config(), tensorsB), rows, out);
        }
        int width = Math.max(6, rows.keySet().stream().mapToInt(String::length).max().orElse(6));
        out.printf(Locale.ROOT, "%-" + width + "s  %12s%n", "tensor", "max|Δ|");
        rows.forEach((name, difference) -> out.printf(Locale.ROOT, "%-" + width + "s  %12.4e%n", name, difference[0]));
        return comparable ? 0 : 1;
    }

    /** Adds the largest difference of every tensor both maps have with one shape to {@code rows}; prints the others. */
    private boolean pair(Map<String, RawTensor> a, Map<String, RawTensor> b, Map<String, double[]> rows, PrintWriter out) {
        boolean comparable = true;
        Set<String> names = new LinkedHashSet<>(a.keySet());
        names.addAll(b.keySet());
        for (String name : names) {
            RawTensor inA = a.get(name);
            RawTensor inB = b.get(name);
            if (inA == null || inB == null) {
                out.printf(Locale.ROOT, "%s: only in %s%n", name, inA == null ? second : first);
                comparable = false;
            } else if (!Arrays.equals(inA.shape(), inB.shape())) {
                out.printf(Locale.ROOT, "%s: shapes differ, %s vs %s%n", name, Arrays.toString(inA.shape()), Arrays.toString(inB.shape()));
                comparable = false;
            } else if (inA.elements() > 0) {
                double worst = 0;
                for (long i = 0; i < inA.elements(); i++) {
                    worst = Math.max(worst, Math.abs(inA.get(i) - inB.get(i)));
                }
                rows.put(name, new double[] {worst});
            }
        }
        return comparable;
    }
}
