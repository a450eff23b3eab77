package io.peft4j.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static com.google.testing.compile.Compiler.javac;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import org.junit.jupiter.api.Test;

/** One test per compile error: each points at the element (or annotation value) at fault. */
class ProcessorErrorsTest {

    private static javax.tools.JavaFileObject source(String className, String... lines) {
        return JavaFileObjects.forSourceLines("com.example." + className,
                java.util.stream.Stream.concat(java.util.stream.Stream.of(
                        "package com.example;",
                        "import io.peft4j.annotations.*;",
                        "import org.nd4j.linalg.api.ndarray.INDArray;",
                        "import org.nd4j.autodiff.samediff.SDVariable;"), java.util.Arrays.stream(lines)).toArray(String[]::new));
    }

    private static Compilation compile(javax.tools.JavaFileObject... sources) {
        return javac().withProcessors(new PeftProcessor()).compile(sources);
    }

    private static javax.tools.JavaFileObject linear(String annotation) {
        return source("Linear",
                annotation,
                "public final class Linear {",
                "  @Weight final INDArray weight = null;",
                "  public INDArray forward(INDArray x) { return x.mmul(weight); }",
                "}");
    }

    @Test
    void rankMustBePositive() {
        javax.tools.JavaFileObject file = linear("@LoRA(rank = 0)");
        assertThat(compile(file)).hadErrorContaining("@LoRA rank must be positive, got 0").inFile(file)
                .onLineContaining("rank = 0");
    }

    @Test
    void alphaMustBePositive() {
        javax.tools.JavaFileObject file = linear("@LoRA(rank = 4, alpha = -1)");
        assertThat(compile(file)).hadErrorContaining("@LoRA alpha must be positive, got -1.0").inFile(file)
                .onLineContaining("alpha = -1");
    }

    @Test
    void dropoutMustBeBelowOne() {
        javax.tools.JavaFileObject file = linear("@LoRA(dropout = 1.0)");
        assertThat(compile(file)).hadErrorContaining("@LoRA dropout must be in [0, 1), got 1.0").inFile(file)
                .onLineContaining("dropout = 1.0");
    }

    @Test
    void layerNeedsAForwardMethod() {
        javax.tools.JavaFileObject file = source("NoForward",
                "@LoRA",
                "public final class NoForward {",
                "  @Weight final INDArray weight = null;",
                "  public INDArray apply(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("NoForward has no forward method").inFile(file)
                .onLineContaining("class NoForward");
    }

    @Test
    void severalForwardCandidatesNeedForwardAnnotation() {
        javax.tools.JavaFileObject file = source("TwoForwards",
                "@LoRA",
                "public final class TwoForwards {",
                "  @Weight final SDVariable weight = null;",
                "  public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
                "  public SDVariable forward(SDVariable x, SDVariable mask) { return x.mmul(weight).mul(mask); }",
                "}");
        assertThat(compile(file)).hadErrorContaining("TwoForwards has 2 forward method candidates").inFile(file)
                .onLineContaining("forward(SDVariable x, SDVariable mask)");
    }

    @Test
    void aGraphForwardMayHaveAnEagerTwin() {
        javax.tools.JavaFileObject file = source("TwoModes",
                "@LoRA",
                "public final class TwoModes {",
                "  @Weight final SDVariable weight = null;",
                "  public INDArray forward(INDArray x) { return x.mmul(weight.getArr()); }",
                "  public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
                "}");
        assertThat(compile(file)).succeededWithoutWarnings();
    }

    @Test
    void threeForwardsAreTooManyEvenWithAnEagerOne() {
        javax.tools.JavaFileObject file = source("ThreeForwards",
                "@LoRA",
                "public final class ThreeForwards {",
                "  @Weight final SDVariable weight = null;",
                "  public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
                "  public INDArray forward(INDArray x) { return x.mmul(weight.getArr()); }",
                "  public SDVariable forward(SDVariable x, SDVariable mask) { return x.mmul(weight).mul(mask); }",
                "}");
        assertThat(compile(file)).hadErrorContaining("ThreeForwards has 3 forward method candidates").inFile(file);
    }

    @Test
    void forwardAnnotationResolvesSeveralCandidates() {
        javax.tools.JavaFileObject file = source("TwoForwards",
                "@LoRA",
                "public final class TwoForwards {",
                "  @Weight final SDVariable weight = null;",
                "  @Forward public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
                "  public INDArray forward(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).succeededWithoutWarnings();
    }

    @Test
    void forwardMustTakeTheInput() {
        javax.tools.JavaFileObject file = source("NoInput",
                "@LoRA",
                "public final class NoInput {",
                "  @Weight final INDArray weight = null;",
                "  public INDArray forward() { return weight; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("takes no parameter").inFile(file)
                .onLineContaining("public INDArray forward()");
    }

    @Test
    void layerNeedsAWeightField() {
        javax.tools.JavaFileObject file = source("NoWeight",
                "@LoRA",
                "public final class NoWeight {",
                "  final INDArray weight = null;",
                "  public INDArray forward(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("NoWeight has no @Weight field").inFile(file)
                .onLineContaining("class NoWeight");
    }

    @Test
    void layerNeedsExactlyOneWeightField() {
        javax.tools.JavaFileObject file = source("TwoWeights",
                "@LoRA",
                "public final class TwoWeights {",
                "  @Weight final INDArray weight = null;",
                "  @Weight final INDArray gate = null;",
                "  public INDArray forward(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("TwoWeights has 2 @Weight fields (weight, gate)").inFile(file)
                .onLineContaining("INDArray gate");
    }

    @Test
    void weightFieldMustNotBePrivate() {
        javax.tools.JavaFileObject file = source("Hidden",
                "@LoRA",
                "public final class Hidden {",
                "  @Weight private final INDArray weight = null;",
                "  public INDArray forward(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("@Weight field 'weight' must not be private").inFile(file)
                .onLineContaining("private final INDArray weight");
    }

    @Test
    void weightFieldMustBeAnNd4jTensor() {
        javax.tools.JavaFileObject file = source("Primitive",
                "@LoRA",
                "public final class Primitive {",
                "  @Weight final double[][] weight = null;",
                "  public INDArray forward(INDArray x) { return x; }",
                "}");
        assertThat(compile(file)).hadErrorContaining("@Weight field 'weight' has type double[][]").inFile(file)
                .onLineContaining("double[][] weight");
    }

    @Test
    void fieldAnnotationNeedsALayerType() {
        javax.tools.JavaFileObject file = source("Attention",
                "public final class Attention {",
                "  @LoRA(rank = 4) final String query = null;",
                "}");
        assertThat(compile(file)).hadErrorContaining("@LoRA on field 'query': its type java.lang.String is not a layer class")
                .inFile(file).onLineContaining("String query");
    }

    @Test
    void fieldAnnotationOnAPrimitiveIsRejected() {
        javax.tools.JavaFileObject file = source("Attention",
                "public final class Attention {",
                "  @LoRA final int heads = 4;",
                "}");
        assertThat(compile(file)).hadErrorContaining("@LoRA on field 'heads' of type int").inFile(file)
                .onLineContaining("int heads");
    }

    @Test
    void annotationOnAnInterfaceIsRejected() {
        javax.tools.JavaFileObject file = source("Layer",
                "@LoRA",
                "public interface Layer {",
                "  INDArray forward(INDArray x);",
                "}");
        assertThat(compile(file)).hadErrorContaining("Layer is an interface, not a class").inFile(file)
                .onLineContaining("interface Layer");
    }
}
