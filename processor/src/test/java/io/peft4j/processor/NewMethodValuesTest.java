package io.peft4j.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static io.peft4j.processor.CompileFixtures.PROJECTION;
import static io.peft4j.processor.CompileFixtures.compile;
import static io.peft4j.processor.CompileFixtures.source;

import com.google.testing.compile.Compilation;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.junit.jupiter.api.Test;

/** Compile errors for @IA3 and for @LoRA's dora and init values. */
class NewMethodValuesTest {

    @Test
    void ia3NeedsALayerWithAWeight() {
        JavaFileObject file = source("Gate", "@IA3", "public final class Gate {", "  public SDVariable forward(SDVariable x) { return x; }", "}");
        assertThat(compile(file)).hadErrorContaining("@IA3 layer class Gate has no @Weight field").inFile(file).onLineContaining("class Gate");
    }

    @Test
    void ia3OnLinearLayersCompilesAndRegistersTheirAccessor() {
        JavaFileObject file = source("Block", "public final class Block {", "  @IA3 final Projection key = null;",
                "  @IA3(feedforward = true) final Projection output = null;", "}");
        Compilation compilation = compile(file, PROJECTION);
        assertThat(compilation).succeededWithoutWarnings();
        assertThat(compilation).generatedFile(StandardLocation.CLASS_OUTPUT, "META-INF/services/io.peft4j.runtime.spi.WeightAccessor")
                .contentsAsUtf8String().isEqualTo("com.example.Projection_LoRA\n");
    }

    @Test
    void ia3FeedforwardOnAnEmbeddingTableIsAnError() {
        JavaFileObject file = source("Model", "public final class Model {",
                "  @PromptTuning @IA3(feedforward = true) final Projection embedding = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@IA3(feedforward = true) on field 'embedding', which @PromptTuning makes an "
                + "embedding table").inFile(file).onLineContaining("feedforward = true");
    }

    @Test
    void doraOnAnEmbeddingTableIsAnError() {
        JavaFileObject file = source("Model", "public final class Model {",
                "  @PromptTuning @LoRA(dora = true) final Projection embedding = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("@LoRA(dora = true) on field 'embedding', which @PromptTuning makes an "
                + "embedding table").inFile(file).onLineContaining("dora = true");
    }

    @Test
    void anUnknownInitialisationDoesNotCompile() {
        JavaFileObject file = source("Model", "public final class Model {", "  @LoRA(init = LoraInit.LOFTQ) final Projection query = null;", "}");
        assertThat(compile(file, PROJECTION)).hadErrorContaining("LOFTQ").inFile(file).onLineContaining("LoraInit.LOFTQ");
    }

    @Test
    void doraWithPissaOnALinearLayerCompiles() {
        JavaFileObject file = source("Model", "public final class Model {",
                "  @LoRA(rank = 4, dora = true, init = LoraInit.PISSA) final Projection query = null;", "}");
        assertThat(compile(file, PROJECTION)).succeededWithoutWarnings();
    }
}
