package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.method.LayerSummary;
import io.peft4j.runtime.method.PeftMethod;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code peft4j inspect <dir>}: method, config, layers, shapes, parameter count and size on disk of an adapter of any method. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Print a saved adapter's method, config, layers, shapes, parameter count and size on disk.")
final class InspectCommand implements Callable<Integer> {

    private static final int LINE = 100;

    @Parameters(index = "0", paramLabel = "<dir>", description = "directory holding adapter_config.json and adapter_model.safetensors")
    java.nio.file.Path directory;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        AdapterFiles adapter = AdapterFiles.open(directory);
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "adapter   %s%n", directory.toAbsolutePath().normalize());
        out.printf(Locale.ROOT, "method    %s (peft_type %s)%n", adapter.method().map(PeftMethod::name).orElse("unknown to peft4j"),
                adapter.peftType());
        printConfig(out, adapter.config());
        List<LayerSummary> rows = adapter.method().map(method -> method.summarize(adapter.config(), adapter.header()))
                .orElseGet(() -> LayerSummary.eachTensor(adapter.header()));
        int width = Math.max(5, rows.stream().mapToInt(row -> row.layer().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%n%-" + width + "s  %s%n", "layer", "stored");
        long total = 0;
        for (LayerSummary row : rows) {
            out.printf(Locale.ROOT, "%-" + width + "s  %s  (%,d parameters)%n", row.layer(), row.details(), row.parameters());
            total += row.parameters();
        }
        long weightsBytes = Files.size(adapter.weightsFile());
        long configBytes = Files.size(adapter.configFile());
        long moduleTensors = rows.stream().filter(row -> row.layer().startsWith(CheckpointKeys.PREFIX)).count();
        out.printf(Locale.ROOT, "%n%d layers%s, %,d parameters%n", rows.size() - moduleTensors,
                moduleTensors == 0 ? "" : String.format(Locale.ROOT, " and %d tensors of trained modules", moduleTensors), total);
        out.printf(Locale.ROOT, "size on disk: %,d bytes (%s %,d + %s %,d)%n", weightsBytes + configBytes,
                adapter.weightsFile().getFileName(), weightsBytes, adapter.configFile().getFileName(), configBytes);
        return 0;
    }

    /** Every config key but {@code peft_type}, as {@code key=value}, wrapped. */
    private static void printConfig(PrintWriter out, JsonNode config) {
        List<String> entries = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> fields = config.fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            if (!field.getKey().equals("peft_type")) {
                JsonNode value = field.getValue();
                entries.add(field.getKey() + "=" + (value.isTextual() ? value.textValue() : value.toString()));
            }
        }
        StringBuilder line = new StringBuilder("config   ");
        for (String entry : entries) {
            if (line.length() > 10 && line.length() + entry.length() + 2 > LINE) {
                out.println(line);
                line = new StringBuilder("         ");
            }
            line.append("  ").append(entry);
        }
        out.println(line);
    }
}
