package io.peft4j.cli;

import io.peft4j.runtime.checkpoint.AtomicWrite;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.RawTensor;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.lora.LoraDelta;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code peft4j merge <base.safetensors> <adapter dir> <out.safetensors>}: writes the base weights with a
 * LoRA adapter merged in, {@code W + s·B·A} per adapted layer computed in fp64 and rounded once to the
 * weight's dtype, and the adapter's trained extra modules ({@code modules_to_save}) in place of the
 * base's. The deployment step for a model that never runs with the agent. Plain Java, no ND4J backend.
 *
 * <p>A layer {@code M} of the adapter merges into the base tensor {@code M.weight}, or the one tensor
 * whose name ends with {@code .M.weight}. Weights are {@code [out, in]} (PyTorch's {@code nn.Linear})
 * or {@code [in, out]} (ND4J, GPT-2's {@code Conv1D}): {@code --layout}, else the base file's
 * {@code peft4j.layout} metadata, else the adapter's {@code fan_in_fan_out}.
 */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge a LoRA adapter (and its trained modules) into base weights stored as safetensors.")
final class MergeCommand implements Callable<Integer> {

    /** Metadata key saying how a weights file lays out its matrices: {@code in_out} or {@code out_in}. */
    static final String LAYOUT_METADATA = "peft4j.layout";

    enum Layout { in_out, out_in }

    @Parameters(index = "0", paramLabel = "<base.safetensors>", description = "the base model's weights")
    Path base;

    @Parameters(index = "1", paramLabel = "<adapter dir>", description = "a LoRA adapter saved in PEFT's format")
    Path adapter;

    @Parameters(index = "2", paramLabel = "<out.safetensors>", description = "where the merged weights go (never one of the inputs)")
    Path output;

    @Option(names = "--layout", description = "how the base file lays out weight matrices: ${COMPLETION-CANDIDATES}")
    Layout layout;

    @Option(names = "--force", description = "replace <out.safetensors> if it exists (it may never be an input)")
    boolean force;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        AdapterFiles files = AdapterFiles.open(adapter);
        refuseToOverwriteInputs(files);
        if (!files.peftType().equals("LORA")) {
            throw new CheckpointException(files.configFile(), "is a " + files.peftType() + " adapter; only LoRA merges into weights "
                    + "(the other methods add computation that no weight can hold)");
        }
        Map<String, RawTensor> weights = new LinkedHashMap<>(SafetensorsFile.readRaw(base, true));
        Map<String, String> metadata = new LinkedHashMap<>(SafetensorsFile.readHeader(base).metadata());
        metadata.remove(SafetensorsFile.CHECKSUMS);
        Layout chosen = layout != null ? layout : metadata.containsKey(LAYOUT_METADATA) ? Layout.valueOf(metadata.get(LAYOUT_METADATA))
                : files.config().path("fan_in_fan_out").asBoolean(false) ? Layout.in_out : Layout.out_in;
        Map<String, RawTensor> adapterTensors = SafetensorsFile.readRaw(files.weightsFile(), false);
        Map<String, RawTensor> deltas = LoraDelta.ofAdapter(files.configFile(), files.config(), adapterTensors);
        if (deltas.isEmpty()) {
            throw new CheckpointException(files.weightsFile(), "holds no lora_A/lora_B pairs to merge");
        }
        PrintWriter out = spec.commandLine().getOut();
        for (Map.Entry<String, RawTensor> delta : deltas.entrySet()) {
            String key = baseKey(weights, delta.getKey() + ".weight");
            RawTensor weight = weights.get(key);
            weights.put(key, merged(key, weight, delta.getValue(), chosen));
            out.printf(Locale.ROOT, "merged %-50s into %s %s %s%n", delta.getKey(), key, weight.dtype(), Arrays.toString(weight.shape()));
        }
        List<String> modules = new io.peft4j.runtime.checkpoint.ConfigReader(files.configFile(), files.config()).strings("modules_to_save");
        for (Map.Entry<String, RawTensor> tensor : adapterTensors.entrySet()) {
            String name = tensor.getKey();
            if (!name.startsWith(CheckpointKeys.PREFIX) || name.contains(".lora_A.") || name.contains(".lora_B.") || modules.isEmpty()) {
                continue;
            }
            String key = baseKey(weights, name.substring(CheckpointKeys.PREFIX.length()));
            weights.put(key, replacement(key, weights.get(key), tensor.getValue(), chosen));
            out.printf(Locale.ROOT, "replaced %-48s by the adapter's trained module%n", key);
        }
        metadata.put(LAYOUT_METADATA, chosen.name());
        metadata.put("peft4j.merged_adapter", adapter.toAbsolutePath().normalize().getFileName().toString());
        AtomicWrite.replace(output, staged -> SafetensorsFile.writeRaw(staged, weights, metadata));
        out.printf(Locale.ROOT, "wrote %s: %d layers merged (%s layout), %d tensors in all%n", output, deltas.size(), chosen, weights.size());
        return 0;
    }

    private void refuseToOverwriteInputs(AdapterFiles files) throws IOException {
        if (!Files.exists(output)) {
            return;
        }
        for (Path input : List.of(base, files.configFile(), files.weightsFile())) {
            if (Files.exists(input) && Files.isSameFile(input, output)) {
                throw new CheckpointException(output, "is one of the inputs; write the merged weights to another file");
            }
        }
        if (!force) {
            throw new CheckpointException(output, "exists; pass --force to replace it");
        }
    }

    /** The base tensor {@code name}, or the one tensor whose name ends with {@code "." + name}. */
    private String baseKey(Map<String, RawTensor> weights, String name) {
        if (weights.containsKey(name)) {
            return name;
        }
        List<String> candidates = weights.keySet().stream().filter(key -> key.endsWith("." + name)).toList();
        if (candidates.size() == 1) {
            return candidates.get(0);
        }
        throw new CheckpointException(base, candidates.isEmpty() ? "has no tensor '" + name + "' (nor one ending with '." + name
                + "') for the adapter's layer; is it the base the adapter was trained on?"
                : "has several tensors ending with '." + name + "': " + candidates);
    }

    private RawTensor merged(String key, RawTensor weight, RawTensor delta, Layout layout) {
        long out = delta.shape()[0];
        long in = delta.shape()[1];
        long[] expected = layout == Layout.out_in ? new long[] {out, in} : new long[] {in, out};
        if (!Arrays.equals(weight.shape(), expected)) {
            throw new CheckpointException(base, "tensor '" + key + "' is " + Arrays.toString(weight.shape()) + ", but the adapter's delta needs "
                    + Arrays.toString(expected) + " in " + layout + " layout" + (Arrays.equals(weight.shape(), new long[] {expected[1], expected[0]})
                    ? "; pass --layout " + (layout == Layout.out_in ? Layout.in_out : Layout.out_in) : ""));
        }
        double[] values = weight.toDoubles();
        double[] change = delta.toDoubles();
        for (int row = 0; row < out; row++) {
            for (int column = 0; column < in; column++) {
                int at = layout == Layout.out_in ? (int) (row * in + column) : (int) (column * out + row);
                values[at] += change[(int) (row * in + column)];
            }
        }
        for (double value : values) {
            if (!Double.isFinite(value)) {
                throw new CheckpointException(adapter, "merging into '" + key + "' gives NaN or Inf; the adapter has diverged. Nothing was written");
            }
        }
        return RawTensor.of(weight.dtype(), weight.shape(), values);
    }

    /** A trained module's tensor, stored as nn.Linear stores it, in the base file's layout and dtype. */
    private RawTensor replacement(String key, RawTensor current, RawTensor trained, Layout layout) {
        double[] values = trained.toDoubles();
        long[] shape = trained.shape();
        if (layout == Layout.in_out && shape.length == 2 && key.endsWith(".weight")) {
            double[] transposed = new double[values.length];
            for (int row = 0; row < shape[0]; row++) {
                for (int column = 0; column < shape[1]; column++) {
                    transposed[(int) (column * shape[0] + row)] = values[(int) (row * shape[1] + column)];
                }
            }
            values = transposed;
            shape = new long[] {shape[1], shape[0]};
        }
        if (!Arrays.equals(shape, current.shape())) {
            throw new CheckpointException(adapter, "the trained module tensor for '" + key + "' is " + Arrays.toString(trained.shape())
                    + ", but the base has " + Arrays.toString(current.shape()));
        }
        return RawTensor.of(current.dtype(), shape, values);
    }
}
