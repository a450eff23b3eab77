package io.peft4j.runtime.method;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.Combination;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.RawTensor;
import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import java.lang.annotation.Annotation;
import java.util.List;
import java.util.Map;

/**
 * A Parameter-Efficient Fine-Tuning method, registered once with {@link java.util.ServiceLoader} in
 * {@code META-INF/services/io.peft4j.runtime.method.PeftMethod}: the whole method (settings, the module
 * that joins the forward pass, its merge, its checkpoint state) lives in one package behind this
 * interface, as Hugging Face PEFT's tuners do behind {@code register_peft_method}.
 */
public interface PeftMethod {

    /** A short lower-case name for messages and option lists: {@code lora}, {@code bottleneck}, ... */
    String name();

    /** The annotation that declares the method on a layer class or field. */
    Class<? extends Annotation> annotation();

    /** The {@code peft_type} of its {@code adapter_config.json}. */
    String peftType();

    /**
     * Creates this method's part of a new adapter on every layer that carries {@link #annotation()};
     * returns {@code null} if none does.
     */
    MethodAdapter attach(AttachContext context);

    /**
     * Creates this method's part of a new adapter as a saved adapter's config describes it (ranks,
     * layers, lengths from the file, not from the annotations), ready for
     * {@link MethodAdapter#prepareLoad}.
     */
    MethodAdapter restore(AttachContext context, SavedAdapter saved);

    /** The result of {@link #combine}: the new part and, per layer, its relative error against the weighted sum. */
    record Combined(MethodAdapter adapter, Map<String, Double> relativeErrors) {
    }

    /** Combines {@code sources} (parts of this method) with {@code weights} into a new part of {@code context}'s adapter. */
    default Combined combine(AttachContext context, List<MethodAdapter> sources, List<Double> weights, Combination combination,
                             int svdRank) {
        throw new PeftException(name() + " adapters cannot be combined; addWeightedAdapter combines LoRA adapters");
    }

    /** The layers of a saved adapter as {@code peft4j inspect} lists them, from its config and header alone. */
    default List<LayerSummary> summarize(JsonNode config, SafetensorsHeader header) {
        return LayerSummary.eachTensor(header);
    }

    /**
     * What a saved adapter changes in the model beyond its tensors, by name, for {@code peft4j diff}
     * (nothing by default). LoRA reports each layer's delta {@code s·B·A}, since A and B alone are
     * defined only up to an invertible {@code r × r} factor. Plain Java: the command line runs without
     * an ND4J backend.
     */
    default Map<String, RawTensor> effects(JsonNode config, Map<String, RawTensor> tensors) {
        return Map.of();
    }
}
