package io.peft4j.runtime.checkpoint;

import io.peft4j.runtime.LoraLayer;
import io.peft4j.runtime.PeftMethod;
import io.peft4j.runtime.PeftModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Saves and loads an adapter, one PEFT method per directory. LoRA uses Hugging Face PEFT's layout: a
 * directory with
 * {@code adapter_config.json} and {@code adapter_model.safetensors}, whose keys are
 * {@code base_model.model.<layer>.lora_A.weight} {@code [r, in]} and
 * {@code base_model.model.<layer>.lora_B.weight} {@code [out, r]} (the transposes of peft4j's
 * {@code A [in, r]} and {@code B [r, out]}). Prompt tuning, prefix tuning and bottleneck adapters are
 * laid out as {@link MethodCheckpoints} describes.
 *
 * <p>Saving is atomic per file, and the weights file records a SHA-256 of the config it was written
 * with, so a save interrupted between its two renames is detected on load rather than silently
 * mixing two adapters. Loading checks everything (config, header, keys, shapes, ranks, finiteness)
 * before it writes a single weight.
 */
public final class AdapterCheckpoint {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    /** Safetensors metadata key holding the SHA-256 of the adapter_config.json written with the weights. */
    public static final String CONFIG_DIGEST = "peft4j.config_sha256";
    private static final String PREFIX = "base_model.model.";

    private AdapterCheckpoint() {
    }

    /** Writes the adapter of {@code model} to {@code dir} (or {@code dir/<adapterName>}); returns that directory. */
    public static Path save(PeftModel model, Path dir, CheckpointOptions options) {
        return save(model, dir, options, () -> { });
    }

    /** As {@link #save(PeftModel, Path, CheckpointOptions)}, running {@code betweenFiles} after the weights are staged. */
    static Path save(PeftModel model, Path dir, CheckpointOptions options, Runnable betweenFiles) {
        Path target = adapterDirectory(dir, options);
        MethodCheckpoints.Contents contents = switch (singleMethod(model, target)) {
            case LORA -> lora(model, options);
            case PROMPT_TUNING -> MethodCheckpoints.prompt(model, options);
            case PREFIX_TUNING -> MethodCheckpoints.prefix(model, options);
            case ADAPTER -> MethodCheckpoints.bottleneck(model, options);
        };
        Map<String, INDArray> tensors = contents.tensors();
        byte[] config = contents.config();
        Map<String, String> metadata = Map.of("format", "pt", CONFIG_DIGEST, sha256(config));
        try {
            Files.createDirectories(target);
            try (AtomicFileSet files = new AtomicFileSet(target)) {
                SafetensorsFile.write(files.stage(WEIGHTS_FILE), tensors, options.storeAs(), metadata);
                betweenFiles.run();
                Files.write(files.stage(CONFIG_FILE), config);
                files.commit();
            }
        } catch (IOException e) {
            throw new CheckpointException(target, "cannot save the adapter: " + e, e);
        }
        return target;
    }

    private static MethodCheckpoints.Contents lora(PeftModel model, CheckpointOptions options) {
        Map<String, LoraLayer> byName = namedLayers(model, options);
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        byName.forEach((name, layer) -> {
            tensors.put(keyA(name), layer.weights().a().transpose());
            tensors.put(keyB(name), layer.weights().b().transpose());
        });
        return new MethodCheckpoints.Contents(tensors, configOf(byName, options).toJson());
    }

    private static PeftMethod singleMethod(PeftModel model, Path where) {
        Set<PeftMethod> methods = model.methods();
        if (methods.size() != 1) {
            throw new CheckpointException(where, "the model has adapters of " + methods + ", and an adapter directory holds one "
                    + "method: attach with PeftModel.builder(model).only(method) to save or load each");
        }
        return methods.iterator().next();
    }

    /**
     * Restores an adapter saved for a model whose layers are annotated the same way. Nothing is
     * written unless every check passes.
     */
    public static void load(PeftModel model, Path dir, CheckpointOptions options) {
        if (model.isMerged()) {
            throw new CheckpointException(dir, "the model's adapters are merged into its weights: call unmerge() before loading");
        }
        Path target = adapterDirectory(dir, options);
        Path configFile = target.resolve(CONFIG_FILE);
        Path weightsFile = target.resolve(WEIGHTS_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new CheckpointException(configFile, "missing: " + target + " is not a PEFT adapter directory");
        }
        if (!Files.isRegularFile(weightsFile)) {
            throw new CheckpointException(weightsFile, "missing: the adapter has a config but no weights");
        }
        byte[] configBytes = readAll(configFile);
        PeftMethod method = singleMethod(model, target);
        String peftType = MethodCheckpoints.peftType(configFile, configBytes);
        if (!peftType.equals(method.peftType())) {
            throw new CheckpointException(configFile, "holds a " + peftType + " adapter, but the model has " + method + " adapters");
        }
        SafetensorsHeader header = SafetensorsFile.readHeader(weightsFile);
        String digest = header.metadata().get(CONFIG_DIGEST);
        if (digest != null && !digest.equals(sha256(configBytes))) {
            throw new CheckpointException(weightsFile, "was written with a different " + CONFIG_FILE
                    + " than the one beside it (an interrupted save?); save the adapter again");
        }
        if (method != PeftMethod.LORA) {
            Map<String, INDArray> tensors = SafetensorsFile.read(weightsFile);
            requireFinite(weightsFile, tensors, options);
            MethodCheckpoints.prepareLoad(model, peftType, tensors, weightsFile, options).run();
            return;
        }
        AdapterConfig config = AdapterConfig.parse(configFile, configBytes);
        Map<String, LoraLayer> byName = namedLayers(model, options);
        checkKeys(weightsFile, header, byName);
        for (Map.Entry<String, LoraLayer> entry : byName.entrySet()) {
            checkLayer(configFile, weightsFile, header, config, entry.getKey(), entry.getValue());
        }
        Map<String, INDArray> tensors = SafetensorsFile.read(weightsFile);
        requireFinite(weightsFile, tensors, options);
        byName.forEach((name, layer) -> {
            INDArray a = layer.weights().a();
            INDArray b = layer.weights().b();
            a.assign(tensors.get(keyA(name)).castTo(a.dataType()).transpose());
            b.assign(tensors.get(keyB(name)).castTo(b.dataType()).transpose());
        });
    }

    private static void requireFinite(Path file, Map<String, INDArray> tensors, CheckpointOptions options) {
        if (options.allowNonFinite()) {
            return;
        }
        for (Map.Entry<String, INDArray> tensor : tensors.entrySet()) {
            INDArray values = tensor.getValue();
            if (values.isNaN().any() || values.isInfinite().any()) {
                throw new CheckpointException(file, "tensor '" + tensor.getKey() + "' contains NaN or Inf; pass allowNonFinite to load it anyway");
            }
        }
    }

    /** {@code dir} for the default adapter, {@code dir/<name>} for any other, as PEFT lays them out. */
    public static Path adapterDirectory(Path dir, CheckpointOptions options) {
        return options.adapterName().equals("default") ? dir : dir.resolve(options.adapterName());
    }

    static String keyA(String layerName) {
        return PREFIX + layerName + ".lora_A.weight";
    }

    static String keyB(String layerName) {
        return PREFIX + layerName + ".lora_B.weight";
    }

    private static Map<String, LoraLayer> namedLayers(PeftModel model, CheckpointOptions options) {
        Map<String, LoraLayer> byName = new LinkedHashMap<>();
        for (LoraLayer layer : model.layers()) {
            String name = options.layerNames().apply(layer.path());
            LoraLayer clash = byName.put(name, layer);
            if (clash != null) {
                throw new IllegalArgumentException("the layer name mapping gives '" + name + "' to both '" + clash.path()
                        + "' and '" + layer.path() + "'");
            }
        }
        return byName;
    }

    /**
     * PEFT has one {@code use_rslora} for the whole adapter; a layer whose rsLoRA setting differs gets
     * the {@code alpha_pattern} entry that gives it the same scale under the adapter-wide setting.
     */
    private static AdapterConfig configOf(Map<String, LoraLayer> byName, CheckpointOptions options) {
        List<LoraLayer> layers = new ArrayList<>(byName.values());
        boolean rslora = mostCommon(layers, LoraLayer::rslora);
        Map<String, Double> alphas = new LinkedHashMap<>();
        byName.forEach((name, layer) -> alphas.put(name, alphaUnder(layer, rslora)));
        int rank = mostCommon(layers, LoraLayer::rank);
        double alpha = mostCommon(new ArrayList<>(alphas.values()), Function.identity());
        Map<String, Integer> rankPattern = new LinkedHashMap<>();
        Map<String, Double> alphaPattern = new LinkedHashMap<>();
        byName.forEach((name, layer) -> {
            if (layer.rank() != rank) {
                rankPattern.put(name, layer.rank());
            }
            if (alphas.get(name) != alpha) {
                alphaPattern.put(name, alphas.get(name));
            }
        });
        boolean allInOut = layers.stream().allMatch(layer -> layer.layout() == io.peft4j.annotations.WeightLayout.IN_OUT);
        return new AdapterConfig("LORA", options.taskType(), rank, alpha, mostCommon(layers, LoraLayer::dropout), rslora,
                List.copyOf(new TreeSet<>(byName.keySet())), "none", allInOut, options.baseModel(), true, rankPattern,
                alphaPattern);
    }

    /** The alpha that gives {@code layer} its scale when the scale is computed with {@code rslora}. */
    private static double alphaUnder(LoraLayer layer, boolean rslora) {
        return layer.rslora() == rslora ? layer.alpha() : layer.weights().scaling() * divisor(layer.rank(), rslora);
    }

    private static double divisor(int rank, boolean rslora) {
        return rslora ? Math.sqrt(rank) : rank;
    }

    private static <E, T> T mostCommon(List<E> items, Function<E, T> property) {
        Map<T, Long> counts = items.stream().collect(Collectors.groupingBy(property, LinkedHashMap::new, Collectors.counting()));
        return counts.entrySet().stream().max(Comparator.comparingLong(Map.Entry::getValue)).orElseThrow().getKey();
    }

    private static void checkKeys(Path file, SafetensorsHeader header, Map<String, LoraLayer> byName) {
        Set<String> expected = new LinkedHashSet<>();
        byName.keySet().forEach(name -> {
            expected.add(keyA(name));
            expected.add(keyB(name));
        });
        Set<String> present = header.tensors().stream().map(TensorInfo::name).collect(Collectors.toCollection(LinkedHashSet::new));
        List<String> missing = expected.stream().filter(key -> !present.contains(key)).toList();
        List<String> unexpected = present.stream().filter(key -> !expected.contains(key)).toList();
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new CheckpointException(file, (missing.isEmpty() ? "" : "missing keys " + missing)
                    + (missing.isEmpty() || unexpected.isEmpty() ? "" : "; ")
                    + (unexpected.isEmpty() ? "" : "unexpected keys " + unexpected)
                    + ": the adapter was saved for a model with other LoRA layers (or another layer name mapping)");
        }
    }

    private static void checkLayer(Path configFile, Path weightsFile, SafetensorsHeader header, AdapterConfig config,
                                   String name, LoraLayer layer) {
        if (config.rankOf(name) != layer.rank()) {
            throw new CheckpointException(configFile, "says r = " + config.rankOf(name) + " for '" + name
                    + "', but the model's @LoRA on '" + layer.path() + "' has rank = " + layer.rank());
        }
        double configScale = config.alphaOf(name) / divisor(config.rankOf(name), config.useRslora());
        double layerScale = layer.weights().scaling();
        if (Math.abs(configScale - layerScale) > 1e-9 * Math.abs(layerScale)) {
            throw new CheckpointException(configFile, "gives '" + name + "' the scale " + configScale + " (lora_alpha = "
                    + config.alphaOf(name) + ", r = " + config.rankOf(name) + ", use_rslora = " + config.useRslora()
                    + "), but the model's @LoRA on '" + layer.path() + "' (alpha = " + layer.alpha() + ", rank = "
                    + layer.rank() + ", rslora = " + layer.rslora() + ") gives " + layerScale);
        }
        long[] shapeA = {layer.rank(), layer.in()};
        long[] shapeB = {layer.out(), layer.rank()};
        for (Map.Entry<String, long[]> expected : Map.of(keyA(name), shapeA, keyB(name), shapeB).entrySet()) {
            long[] stored = header.tensor(expected.getKey()).shape();
            if (!Arrays.equals(stored, expected.getValue())) {
                throw new CheckpointException(weightsFile, "tensor '" + expected.getKey() + "' has shape "
                        + Arrays.toString(stored) + ", but layer '" + layer.path() + "' (in = " + layer.in() + ", out = "
                        + layer.out() + ", r = " + layer.rank() + ") needs " + Arrays.toString(expected.getValue()));
            }
        }
    }

    private static byte[] readAll(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be read: " + e, e);
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
