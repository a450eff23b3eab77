package io.peft4j.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static io.peft4j.processor.CompileFixtures.PROJECTION;
import static io.peft4j.processor.CompileFixtures.compile;
import static io.peft4j.processor.CompileFixtures.source;

import com.google.testing.compile.Compilation;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.junit.jupiter.api.Test;

/** Compile errors for @Adapter, @PromptTuning and @PrefixTuning, and the accessors they need. */
class OtherMethodsErrorsTest {

    private static final JavaFileObject BLOCK = source("Block",
            "public final class Block {",
            "  public SDVariable forward(SDVariable x) { return x; }",
            "}");

    @Test
    void adapterReductionFactorMustBePositive() {
        JavaFileObject file = source("Layer", "public final class Layer {", "  @Adapter(reductionFactor = 0) final Block block = null;", "}");
        assertThat(compile(file, BLOCK)).hadErrorContaining("@Adapter reductionFactor must be positive, got 0").inFile(file)
                .onLineContaining("reductionFactor = 0");
    }

    @Test
    void adapterActivationMustBeKnown() {
        JavaFileObject file = source("Layer", "public final class Layer {", "  @Adapter(activation = \"sigmoid\") final Block block = null;", "}");
        assertThat(compile(file, BLOCK)).hadErrorContaining("@Adapter activation \"sigmoid\" is unknown").inFile(file)
                .onLineContaining("sigmoid");
    }

    @Test
    void adapterNeedsABlockWithAForwardMethod() {
        JavaFileObject file = source("Shapeless", "@Adapter", "public final class Shapeless {", "  public SDVariable apply(SDVariable x) { return x; }", "}");
        assertThat(compile(file)).hadErrorContaining("@Adapter layer class Shapeless has no forward method").inFile(file)
                .onLineContaining("class Shapeless");
    }

    @Test
    void adapterOnABlockCompiles() {
        JavaFileObject file = source("Layer", "public final class Layer {", "  @Adapter(preset = AdapterPreset.HOULSBY) final Block block = null;", "}");
        assertThat(compile(file, BLOCK)).succeededWithoutWarnings();
    }

    @Test
    void promptVirtualTokensMustBePositive() {
        JavaFileObject file = source("Model", "public final class Model {", "  @PromptTuning(virtualTokens = 0) final Projection embedding = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@PromptTuning virtualTokens must be positive, got 0").inFile(file)
                .onLineContaining("virtualTokens = 0");
    }

    @Test
    void textInitNeedsText() {
        JavaFileObject file = source("Model", "public final class Model {", "  @PromptTuning(init = PromptInit.TEXT) final Projection embedding = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@PromptTuning(init = TEXT) needs the text").inFile(file)
                .onLineContaining("PromptInit.TEXT");
    }

    @Test
    void promptTuningNeedsAnEmbeddingLayer() {
        JavaFileObject file = source("Model", "public final class Model {", "  @PromptTuning final Block embedding = null;", "}");
        assertThat(compile(file, BLOCK)).hadErrorContaining("its type com.example.Block is not an embedding layer").inFile(file)
                .onLineContaining("final Block embedding");
    }

    @Test
    void prefixVirtualTokensMustBePositive() {
        JavaFileObject file = source("Attention", "@PrefixTuning(virtualTokens = -2)", "public final class Attention {",
                "  final Projection key = null;", "  final Projection value = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@PrefixTuning virtualTokens must be positive, got -2").inFile(file)
                .onLineContaining("virtualTokens = -2");
    }

    @Test
    void prefixTuningNeedsKeyAndValueProjections() {
        JavaFileObject file = source("Attention", "@PrefixTuning", "public final class Attention {", "  final Projection query = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@PrefixTuning on Attention: it has no key projection field 'key'")
                .inFile(file).onLineContaining("class Attention");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("it has no value projection field 'value'");
    }

    @Test
    void prefixProjectionsMustBeWeightLayers() {
        JavaFileObject file = source("Attention", "@PrefixTuning(keys = \"k\", values = \"v\")", "public final class Attention {",
                "  final Block k = null;", "  final Projection v = null;", "}");
        assertThat(compile(file, PROJECTION, BLOCK)).hadErrorContaining("its key projection 'k' is not a layer with a @Weight")
                .inFile(file).onLineContaining("class Attention");
    }

    @Test
    void promptAndPrefixTargetsGetAccessors() {
        JavaFileObject file = source("Model", "public final class Model {",
                "  @PromptTuning(virtualTokens = 4) final Projection embedding = null;", "  final Attention attention = null;", "}");
        JavaFileObject attention = source("Attention", "@PrefixTuning(virtualTokens = 2)", "public final class Attention {",
                "  final Projection key = null;", "  final Projection value = null;", "}");
        Compilation compilation = compile(file, attention, PROJECTION);
        assertThat(compilation).succeededWithoutWarnings();
        assertThat(compilation).generatedFile(StandardLocation.CLASS_OUTPUT, "META-INF/services/io.peft4j.runtime.spi.WeightAccessor")
                .contentsAsUtf8String().isEqualTo("com.example.Projection_LoRA\n");
    }
}
