package io.peft4j.runtime.cli;

import io.peft4j.runtime.checkpoint.AdapterConfig;
import io.peft4j.runtime.checkpoint.TensorInfo;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code peft4j inspect <dir>}: layers, shapes, ranks, parameter count, size on disk and config of an adapter. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Print a saved LoRA adapter's layers, shapes, ranks, parameter count, size on disk and config.")
final class InspectCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "<dir>", description = "directory holding adapter_config.json and adapter_model.safetensors")
    Path directory;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        AdapterFiles adapter = AdapterFiles.open(directory);
        PrintWriter out = spec.commandLine().getOut();
        AdapterConfig config = adapter.config();
        out.printf(Locale.ROOT, "adapter   %s%n", directory.toAbsolutePath().normalize());
        out.printf(Locale.ROOT, "config    peft_type=%s  r=%d  lora_alpha=%s  lora_dropout=%s  use_rslora=%s  bias=%s  fan_in_fan_out=%s%n",
                config.peftType(), config.r(), config.loraAlpha(), config.loraDropout(), config.useRslora(), config.bias(),
                config.fanInFanOut());
        out.printf(Locale.ROOT, "          task_type=%s  base_model_name_or_path=%s  inference_mode=%s%n", config.taskType(),
                config.baseModelNameOrPath(), config.inferenceMode());
        out.printf(Locale.ROOT, "          target_modules=%s%n", config.targetModules());
        if (!config.rankPattern().isEmpty() || !config.alphaPattern().isEmpty()) {
            out.printf(Locale.ROOT, "          rank_pattern=%s  alpha_pattern=%s%n", config.rankPattern(), config.alphaPattern());
        }
        int width = Math.max(5, adapter.layers().keySet().stream().mapToInt(String::length).max().orElse(5));
        out.printf(Locale.ROOT, "%n%-" + width + "s  %4s  %5s  %5s  %-5s  %-14s  %-14s  %10s%n", "layer", "rank", "in", "out",
                "dtype", "lora_A", "lora_B", "params");
        long total = 0;
        for (Map.Entry<String, TensorInfo[]> layer : adapter.layers().entrySet()) {
            TensorInfo a = layer.getValue()[0];
            TensorInfo b = layer.getValue()[1];
            long params = (a == null ? 0 : a.elements()) + (b == null ? 0 : b.elements());
            total += params;
            out.printf(Locale.ROOT, "%-" + width + "s  %4s  %5s  %5s  %-5s  %-14s  %-14s  %,10d%n", layer.getKey(),
                    a == null ? "?" : a.shape()[0], a == null ? "?" : a.shape()[1], b == null ? "?" : b.shape()[0],
                    (a != null ? a : b).dtype(), a == null ? "missing" : Arrays.toString(a.shape()),
                    b == null ? "missing" : Arrays.toString(b.shape()), params);
        }
        for (TensorInfo other : adapter.otherTensors()) {
            out.printf(Locale.ROOT, "other tensor: %s%n", other);
            total += other.elements();
        }
        long weightsBytes = Files.size(adapter.weightsFile());
        long configBytes = Files.size(adapter.configFile());
        out.printf(Locale.ROOT, "%n%d layers, %,d parameters%n", adapter.layers().size(), total);
        out.printf(Locale.ROOT, "size on disk: %,d bytes (%s %,d + %s %,d)%n", weightsBytes + configBytes,
                adapter.weightsFile().getFileName(), weightsBytes, adapter.configFile().getFileName(), configBytes);
        return 0;
    }
}
