package io.peft4j.processor;

import com.google.auto.service.AutoService;
import com.squareup.javapoet.ClassName;
import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.IA3;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import java.io.IOException;
import java.io.Writer;
import java.util.LinkedHashSet;
import java.util.Set;
import javax.annotation.processing.AbstractProcessor;
import javax.annotation.processing.Processor;
import javax.annotation.processing.RoundEnvironment;
import javax.lang.model.SourceVersion;
import javax.lang.model.element.Element;
import javax.lang.model.element.TypeElement;
import javax.lang.model.element.VariableElement;
import javax.lang.model.util.ElementFilter;
import javax.lang.model.type.DeclaredType;
import javax.lang.model.type.TypeKind;
import javax.tools.StandardLocation;

/**
 * Validates {@code @LoRA}, {@code @IA3}, {@code @Adapter}, {@code @PromptTuning} and {@code @PrefixTuning} at
 * compile time and generates, for each layer class whose weight the runtime needs (a LoRA layer, a
 * prompt-tuned embedding, a prefix-tuned attention's key and value projections), a
 * {@code <Layer>_LoRA} accessor and merge utility registered under
 * {@code META-INF/services/io.peft4j.runtime.spi.WeightAccessor}.
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
        return Set.of(LoRA.class.getCanonicalName(), IA3.class.getCanonicalName(), Adapter.class.getCanonicalName(),
                PromptTuning.class.getCanonicalName(), PrefixTuning.class.getCanonicalName());
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
        AnnotationValues values = new AnnotationValues(errors);
        LayerInspector inspector = new LayerInspector();
        AccessorWriter writer = new AccessorWriter(processingEnv.getFiler(), processingEnv.getElementUtils());
        for (Element annotated : round.getElementsAnnotatedWith(LoRA.class)) {
            values.checkLora(annotated);
            weightLayer(annotated, "@LoRA", "a layer class that LoRA can adapt", inspector, writer, errors);
        }
        for (Element annotated : round.getElementsAnnotatedWith(IA3.class)) {
            values.checkIa3(annotated);
            weightLayer(annotated, "@IA3", "a layer class whose outputs or inputs (IA)³ can rescale", inspector, writer, errors);
        }
        for (Element annotated : round.getElementsAnnotatedWith(PromptTuning.class)) {
            values.checkPromptTuning(annotated);
            weightLayer(annotated, "@PromptTuning", "an embedding layer (its @Weight is the [vocabulary, d] table)", inspector,
                    writer, errors);
        }
        for (Element annotated : round.getElementsAnnotatedWith(Adapter.class)) {
            values.checkAdapter(annotated);
            TypeElement block = layerTypeOf(annotated, "@Adapter", errors);
            if (block != null) {
                report(annotated, block, "@Adapter", "a layer a bottleneck adapter can follow", inspector.inspectBlock(block), errors);
            }
        }
        for (Element annotated : round.getElementsAnnotatedWith(PrefixTuning.class)) {
            values.checkPrefixTuning(annotated);
            TypeElement attention = layerTypeOf(annotated, "@PrefixTuning", errors);
            if (attention != null) {
                PrefixTuning prefix = annotated.getAnnotation(PrefixTuning.class);
                projection(annotated, attention, prefix.keys(), "key", inspector, writer, errors);
                projection(annotated, attention, prefix.values(), "value", inspector, writer, errors);
            }
        }
        return false;
    }

    /** A {@code @LoRA} or {@code @PromptTuning} target: a layer with one {@code @Weight}, which gets an accessor. */
    private void weightLayer(Element annotated, String annotation, String role, LayerInspector inspector, AccessorWriter writer,
                             ErrorReporter errors) {
        TypeElement layerType = layerTypeOf(annotated, annotation, errors);
        if (layerType == null) {
            return;
        }
        LayerInspector.Inspection inspection = inspector.inspect(layerType);
        if (inspection.isLayer()) {
            generate(inspection.layer(), writer, errors);
        } else {
            report(annotated, layerType, annotation, role, inspection.problems(), errors);
        }
    }

    /** The key or value projection field of a {@code @PrefixTuning} attention class, which gets an accessor. */
    private void projection(Element annotated, TypeElement attention, String fieldName, String role, LayerInspector inspector,
                            AccessorWriter writer, ErrorReporter errors) {
        VariableElement field = ElementFilter.fieldsIn(attention.getEnclosedElements()).stream()
                .filter(candidate -> candidate.getSimpleName().contentEquals(fieldName)).findFirst().orElse(null);
        if (field == null || field.asType().getKind() != TypeKind.DECLARED) {
            errors.error(annotated, "@PrefixTuning on " + attention.getSimpleName() + ": it has no " + role + " projection field '"
                    + fieldName + "' holding a layer; name it with " + role + "s = \"...\"");
            return;
        }
        TypeElement projectionType = (TypeElement) ((DeclaredType) field.asType()).asElement();
        LayerInspector.Inspection inspection = inspector.inspect(projectionType);
        if (inspection.isLayer()) {
            generate(inspection.layer(), writer, errors);
            return;
        }
        for (LayerInspector.Problem problem : inspection.problems()) {
            errors.error(annotated, "@PrefixTuning on " + attention.getSimpleName() + ": its " + role + " projection '" + fieldName
                    + "' is not a layer with a @Weight: " + problem.message());
        }
    }

    private TypeElement layerTypeOf(Element annotated, String annotation, ErrorReporter errors) {
        if (annotated instanceof TypeElement type) {
            return type;
        }
        if (annotated.asType().getKind() != TypeKind.DECLARED) {
            errors.error(annotated, annotation + " on field '" + annotated.getSimpleName() + "' of type " + annotated.asType()
                    + ": the field's type must be a layer class (a class with a forward method)");
            return null;
        }
        return (TypeElement) ((DeclaredType) annotated.asType()).asElement();
    }

    private static void report(Element annotated, TypeElement layerType, String annotation, String role,
                               java.util.List<LayerInspector.Problem> problems, ErrorReporter errors) {
        for (LayerInspector.Problem problem : problems) {
            if (annotated == layerType) {
                errors.error(problem.element(), annotation + " layer class " + problem.message());
            } else {
                errors.error(annotated, annotation + " on field '" + annotated.getSimpleName() + "': its type "
                        + layerType.getQualifiedName() + " is not " + role + ": " + problem.message());
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
