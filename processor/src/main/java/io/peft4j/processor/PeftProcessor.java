package io.peft4j.processor;

import com.google.auto.service.AutoService;
import com.squareup.javapoet.ClassName;
import io.peft4j.annotations.LoRA;
import java.io.IOException;
import java.io.Writer;
import java.util.LinkedHashSet;
import java.util.Set;
import javax.annotation.processing.AbstractProcessor;
import javax.annotation.processing.Processor;
import javax.annotation.processing.RoundEnvironment;
import javax.lang.model.SourceVersion;
import javax.lang.model.element.Element;
import javax.lang.model.element.ElementKind;
import javax.lang.model.element.TypeElement;
import javax.lang.model.type.DeclaredType;
import javax.lang.model.type.TypeKind;
import javax.tools.StandardLocation;

/**
 * Validates every {@code @LoRA} at compile time and generates, for each layer class that LoRA
 * adapts (annotated itself, or the type of an annotated field), a {@code <Layer>_LoRA} merge
 * utility registered under {@code META-INF/services/io.peft4j.runtime.spi.WeightAccessor}.
 *
 * <p>Errors point at the offending element or annotation value. The processor never claims the
 * annotations and never throws into javac.
 *
 * <p>Declared <em>aggregating</em> for Gradle (not isolating): the services file lists the
 * accessors of all layer classes together.
 */
@AutoService(Processor.class)
public final class PeftProcessor extends AbstractProcessor {

    private static final String SERVICES_FILE = "META-INF/services/" + AccessorWriter.WEIGHT_ACCESSOR.canonicalName();

    private final Set<String> accessors = new LinkedHashSet<>();

    @Override
    public Set<String> getSupportedAnnotationTypes() {
        return Set.of(LoRA.class.getCanonicalName());
    }

    @Override
    public SourceVersion getSupportedSourceVersion() {
        return SourceVersion.latestSupported();
    }

    @Override
    public boolean process(Set<? extends TypeElement> annotations, RoundEnvironment round) {
        ErrorReporter errors = new ErrorReporter(processingEnv.getMessager());
        if (round.processingOver()) {
            writeServicesFile(errors);
            return false;
        }
        LoraValues values = new LoraValues(errors);
        LayerInspector inspector = new LayerInspector();
        AccessorWriter writer = new AccessorWriter(processingEnv.getFiler(), processingEnv.getElementUtils());
        for (Element annotated : round.getElementsAnnotatedWith(LoRA.class)) {
            values.check(annotated);
            TypeElement layerType = layerTypeOf(annotated, errors);
            if (layerType == null) {
                continue;
            }
            LayerInspector.Inspection inspection = inspector.inspect(layerType);
            if (!inspection.isLayer()) {
                report(annotated, layerType, inspection, errors);
                continue;
            }
            generate(inspection.layer(), writer, errors);
        }
        return false;
    }

    private TypeElement layerTypeOf(Element annotated, ErrorReporter errors) {
        if (annotated.getKind() == ElementKind.CLASS || annotated.getKind().isInterface() || annotated.getKind() == ElementKind.ENUM
                || annotated.getKind() == ElementKind.RECORD) {
            return (TypeElement) annotated;
        }
        if (annotated.asType().getKind() != TypeKind.DECLARED) {
            errors.error(annotated, "@LoRA on field '" + annotated.getSimpleName() + "' of type " + annotated.asType()
                    + ": the field's type must be a layer class (one @Weight field and one forward method)");
            return null;
        }
        return (TypeElement) ((DeclaredType) annotated.asType()).asElement();
    }

    private static void report(Element annotated, TypeElement layerType, LayerInspector.Inspection inspection,
                               ErrorReporter errors) {
        for (LayerInspector.Problem problem : inspection.problems()) {
            if (annotated == layerType) {
                errors.error(problem.element(), "@LoRA layer class " + problem.message());
            } else {
                errors.error(annotated, "@LoRA on field '" + annotated.getSimpleName() + "': its type "
                        + layerType.getQualifiedName() + " is not a layer class that LoRA can adapt: " + problem.message());
            }
        }
    }

    private void generate(LayerClass layer, AccessorWriter writer, ErrorReporter errors) {
        ClassName accessor = layer.accessorName();
        if (!accessors.add(accessor.canonicalName())
                || processingEnv.getElementUtils().getTypeElement(accessor.canonicalName()) != null) {
            return;
        }
        try {
            writer.write(layer);
        } catch (IOException | RuntimeException e) {
            errors.error(layer.type(), "peft4j could not write " + accessor + ": " + e);
        }
    }

    private void writeServicesFile(ErrorReporter errors) {
        if (accessors.isEmpty()) {
            return;
        }
        try (Writer out = processingEnv.getFiler()
                .createResource(StandardLocation.CLASS_OUTPUT, "", SERVICES_FILE).openWriter()) {
            for (String accessor : accessors) {
                out.write(accessor);
                out.write('\n');
            }
        } catch (IOException | RuntimeException e) {
            errors.error(null, "peft4j could not write " + SERVICES_FILE + ": " + e);
        }
    }
}
