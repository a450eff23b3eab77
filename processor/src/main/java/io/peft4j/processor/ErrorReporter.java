package io.peft4j.processor;

import javax.annotation.processing.Messager;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.Element;
import javax.tools.Diagnostic;

/** Reports compile errors at the element (and, where known, the annotation value) that caused them. */
final class ErrorReporter {

    private final Messager messager;
    private int errors;

    ErrorReporter(Messager messager) {
        this.messager = messager;
    }

    /** Reports at {@code element}, or without a position when it is {@code null}. */
    void error(Element element, String message) {
        errors++;
        if (element == null) {
            messager.printMessage(Diagnostic.Kind.ERROR, message);
        } else {
            messager.printMessage(Diagnostic.Kind.ERROR, message, element);
        }
    }

    void error(Element element, AnnotationMirror annotation, AnnotationValue value, String message) {
        errors++;
        messager.printMessage(Diagnostic.Kind.ERROR, message, element, annotation, value);
    }

    int errorCount() {
        return errors;
    }
}
