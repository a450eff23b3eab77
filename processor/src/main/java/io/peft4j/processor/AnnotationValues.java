package io.peft4j.processor;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.IA3;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptInit;
import io.peft4j.annotations.PromptTuning;
import java.lang.annotation.Annotation;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.Element;
import javax.lang.model.element.ExecutableElement;

/** Checks the values inside peft4j's annotations and reports each bad one at the value itself. */
final class AnnotationValues {

    static final Set<String> ACTIVATIONS = Set.of("relu", "gelu", "swish", "silu", "tanh");

    private final ErrorReporter errors;

    AnnotationValues(ErrorReporter errors) {
        this.errors = errors;
    }

    void checkLora(Element annotated) {
        LoRA lora = annotated.getAnnotation(LoRA.class);
        if (lora.rank() <= 0) {
            report(annotated, LoRA.class, "rank", "@LoRA rank must be positive, got " + lora.rank());
        }
        if (!(lora.alpha() > 0)) {
            report(annotated, LoRA.class, "alpha", "@LoRA alpha must be positive, got " + lora.alpha());
        }
        if (!(lora.dropout() >= 0 && lora.dropout() < 1)) {
            report(annotated, LoRA.class, "dropout", "@LoRA dropout must be in [0, 1), got " + lora.dropout());
        }
        if (lora.dora() && annotated.getAnnotation(PromptTuning.class) != null) {
            report(annotated, LoRA.class, "dora", "@LoRA(dora = true) on " + describe(annotated) + ", which @PromptTuning makes an "
                    + "embedding table: DoRA normalises the columns of a linear layer's [in, out] weight by x·W, and an embedding's "
                    + "input is token ids; use plain LoRA here, or DoRA on the linear layers");
        }
    }

    void checkIa3(Element annotated) {
        IA3 ia3 = annotated.getAnnotation(IA3.class);
        if (ia3.feedforward() && annotated.getAnnotation(PromptTuning.class) != null) {
            report(annotated, IA3.class, "feedforward", "@IA3(feedforward = true) on " + describe(annotated) + ", which @PromptTuning "
                    + "makes an embedding table: a feed-forward vector rescales the input features of x·W, and an embedding's input is "
                    + "token ids; rescale its output instead (feedforward = false)");
        }
    }

    private static String describe(Element annotated) {
        return (annotated.getKind().isField() ? "field '" : "class '") + annotated.getSimpleName() + "'";
    }

    void checkAdapter(Element annotated) {
        Adapter adapter = annotated.getAnnotation(Adapter.class);
        if (adapter.reductionFactor() <= 0) {
            report(annotated, Adapter.class, "reductionFactor",
                    "@Adapter reductionFactor must be positive, got " + adapter.reductionFactor());
        }
        if (adapter.size() < 0) {
            report(annotated, Adapter.class, "size", "@Adapter size must be positive (or 0 for hidden / reductionFactor), got "
                    + adapter.size());
        }
        String activation = adapter.activation().toLowerCase(Locale.ROOT);
        if (!activation.isEmpty() && !ACTIVATIONS.contains(activation)) {
            report(annotated, Adapter.class, "activation", "@Adapter activation \"" + adapter.activation()
                    + "\" is unknown: use relu, gelu, swish, silu or tanh");
        }
    }

    void checkPromptTuning(Element annotated) {
        PromptTuning prompt = annotated.getAnnotation(PromptTuning.class);
        if (prompt.virtualTokens() <= 0) {
            report(annotated, PromptTuning.class, "virtualTokens",
                    "@PromptTuning virtualTokens must be positive, got " + prompt.virtualTokens());
        }
        if (prompt.init() == PromptInit.TEXT && prompt.text().isBlank()) {
            report(annotated, PromptTuning.class, "init", "@PromptTuning(init = TEXT) needs the text to start from: text = \"...\"");
        }
    }

    void checkPrefixTuning(Element annotated) {
        PrefixTuning prefix = annotated.getAnnotation(PrefixTuning.class);
        if (prefix.virtualTokens() <= 0) {
            report(annotated, PrefixTuning.class, "virtualTokens",
                    "@PrefixTuning virtualTokens must be positive, got " + prefix.virtualTokens());
        }
        if (prefix.projectionHidden() < 0) {
            report(annotated, PrefixTuning.class, "projectionHidden",
                    "@PrefixTuning projectionHidden must be positive (or 0 for d), got " + prefix.projectionHidden());
        }
    }

    private void report(Element annotated, Class<? extends Annotation> type, String attribute, String message) {
        for (AnnotationMirror mirror : annotated.getAnnotationMirrors()) {
            if (!mirror.getAnnotationType().toString().equals(type.getCanonicalName())) {
                continue;
            }
            for (Map.Entry<? extends ExecutableElement, ? extends AnnotationValue> entry : mirror.getElementValues().entrySet()) {
                if (entry.getKey().getSimpleName().contentEquals(attribute)) {
                    errors.error(annotated, mirror, entry.getValue(), message);
                    return;
                }
            }
        }
        errors.error(annotated, message);
    }
}
