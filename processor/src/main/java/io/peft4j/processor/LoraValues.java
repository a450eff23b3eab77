package io.peft4j.processor;

import io.peft4j.annotations.LoRA;
import java.util.Map;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.Element;
import javax.lang.model.element.ExecutableElement;

/** Checks the numbers in one {@code @LoRA}: rank > 0, alpha > 0, dropout in [0, 1). */
final class LoraValues {

    private final ErrorReporter errors;

    LoraValues(ErrorReporter errors) {
        this.errors = errors;
    }

    /** Reports each bad value at the value itself; returns whether all were good. */
    boolean check(Element annotated) {
        LoRA lora = annotated.getAnnotation(LoRA.class);
        int before = errors.errorCount();
        if (lora.rank() <= 0) {
            report(annotated, "rank", "@LoRA rank must be positive, got " + lora.rank());
        }
        if (!(lora.alpha() > 0)) {
            report(annotated, "alpha", "@LoRA alpha must be positive, got " + lora.alpha());
        }
        if (!(lora.dropout() >= 0 && lora.dropout() < 1)) {
            report(annotated, "dropout", "@LoRA dropout must be in [0, 1), got " + lora.dropout());
        }
        return errors.errorCount() == before;
    }

    private void report(Element annotated, String attribute, String message) {
        for (AnnotationMirror mirror : annotated.getAnnotationMirrors()) {
            if (!mirror.getAnnotationType().toString().equals(LoRA.class.getCanonicalName())) {
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
