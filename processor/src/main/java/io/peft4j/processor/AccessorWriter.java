package io.peft4j.processor;

import com.squareup.javapoet.AnnotationSpec;
import com.squareup.javapoet.ClassName;
import com.squareup.javapoet.JavaFile;
import com.squareup.javapoet.MethodSpec;
import com.squareup.javapoet.ParameterizedTypeName;
import com.squareup.javapoet.TypeName;
import com.squareup.javapoet.TypeSpec;
import java.io.IOException;
import javax.annotation.processing.Filer;
import javax.lang.model.element.Modifier;
import javax.lang.model.util.Elements;

/**
 * Writes {@code <Layer>_LoRA}: the layer's {@code WeightAccessor} for the runtime, plus static,
 * typed {@code merge} and {@code unmerge} methods that read the {@code @Weight} field directly.
 */
final class AccessorWriter {

    static final String SPI_PACKAGE = "io.peft4j.runtime.spi";
    static final ClassName WEIGHT_ACCESSOR = ClassName.get(SPI_PACKAGE, "WeightAccessor");
    private static final ClassName LORA_WEIGHTS = ClassName.get(SPI_PACKAGE, "LoraWeights");
    private static final ClassName LORA_MERGE = ClassName.get(SPI_PACKAGE, "LoraMerge");
    private static final ClassName WEIGHT_LAYOUT = ClassName.get("io.peft4j.annotations", "WeightLayout");
    private static final ClassName GENERATED = ClassName.get("javax.annotation.processing", "Generated");

    private final Filer filer;
    private final Elements elements;

    AccessorWriter(Filer filer, Elements elements) {
        this.filer = filer;
        this.elements = elements;
    }

    void write(LayerClass layer) throws IOException {
        JavaFile.builder(layer.accessorName().packageName(), accessor(layer))
                .skipJavaLangImports(true)
                .build()
                .writeTo(filer);
    }

    private TypeSpec accessor(LayerClass layer) {
        TypeName layerType = TypeName.get(elements.getTypeElement(layer.type().getQualifiedName()).asType());
        ClassName rawLayer = ClassName.get(layer.type());
        String weight = layer.weightField().getSimpleName().toString();
        String weightName = rawLayer.simpleName() + "." + weight;
        TypeSpec.Builder type = TypeSpec.classBuilder(layer.accessorName())
                .addModifiers(Modifier.PUBLIC, Modifier.FINAL)
                .addSuperinterface(ParameterizedTypeName.get(WEIGHT_ACCESSOR, rawLayer))
                .addOriginatingElement(layer.type())
                .addJavadoc("LoRA merge utility and weight accessor for {@link $T}, whose {@code @Weight} is {@code $L} in $L layout.\n",
                        rawLayer, weight, layer.layout());
        if (elements.getTypeElement(GENERATED.canonicalName()) != null) {
            type.addAnnotation(AnnotationSpec.builder(GENERATED)
                    .addMember("value", "$S", PeftProcessor.class.getCanonicalName()).build());
        }
        if (layerType instanceof ParameterizedTypeName) {
            type.addAnnotation(AnnotationSpec.builder(SuppressWarnings.class).addMember("value", "$S", "rawtypes").build());
        }
        type.addMethod(MethodSpec.constructorBuilder().addModifiers(Modifier.PUBLIC)
                .addJavadoc("For {@link java.util.ServiceLoader}.\n").build());
        type.addMethod(MethodSpec.methodBuilder("merge")
                .addModifiers(Modifier.PUBLIC, Modifier.STATIC)
                .addJavadoc("{@code $L += s · A · B}$L, computed in fp32; leaves the weight untouched if the result is not finite.\n",
                        weight, layer.layout().name().equals("OUT_IN") ? " (transposed, for the [out, in] layout)" : "")
                .addParameter(rawLayer, "layer")
                .addParameter(LORA_WEIGHTS, "weights")
                .addStatement("$T.merge(layer.$L, weights, $T.$L, $S)", LORA_MERGE, weight, WEIGHT_LAYOUT, layer.layout(), weightName)
                .build());
        type.addMethod(MethodSpec.methodBuilder("unmerge")
                .addModifiers(Modifier.PUBLIC, Modifier.STATIC)
                .addJavadoc("{@code $L -= s · A · B}: takes out exactly what {@link #merge} added.\n", weight)
                .addParameter(rawLayer, "layer")
                .addParameter(LORA_WEIGHTS, "weights")
                .addStatement("$T.unmerge(layer.$L, weights, $T.$L, $S)", LORA_MERGE, weight, WEIGHT_LAYOUT, layer.layout(), weightName)
                .build());
        type.addMethod(MethodSpec.methodBuilder("layerType")
                .addAnnotation(Override.class)
                .addModifiers(Modifier.PUBLIC)
                .returns(ParameterizedTypeName.get(ClassName.get(Class.class), rawLayer))
                .addStatement("return $T.class", rawLayer)
                .build());
        type.addMethod(MethodSpec.methodBuilder("layout")
                .addAnnotation(Override.class)
                .addModifiers(Modifier.PUBLIC)
                .returns(WEIGHT_LAYOUT)
                .addStatement("return $T.$L", WEIGHT_LAYOUT, layer.layout())
                .build());
        type.addMethod(MethodSpec.methodBuilder("weightName")
                .addAnnotation(Override.class)
                .addModifiers(Modifier.PUBLIC)
                .returns(String.class)
                .addStatement("return $S", weight)
                .build());
        type.addMethod(MethodSpec.methodBuilder("weight")
                .addAnnotation(Override.class)
                .addModifiers(Modifier.PUBLIC)
                .returns(Object.class)
                .addParameter(rawLayer, "layer")
                .addStatement("return layer.$L", weight)
                .build());
        return type.build();
    }
}
