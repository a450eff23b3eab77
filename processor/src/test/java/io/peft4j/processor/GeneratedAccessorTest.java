package io.peft4j.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static com.google.testing.compile.Compiler.javac;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.LoraWeights;
import io.peft4j.runtime.spi.WeightAccessor;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** What the generated {@code <Layer>_LoRA} classes do once compiled and loaded. */
class GeneratedAccessorTest {

    private static final JavaFileObject TORCH_LINEAR = JavaFileObjects.forSourceLines("com.example.TorchLinear",
            "package com.example;",
            "import io.peft4j.annotations.*;",
            "import org.nd4j.linalg.api.ndarray.INDArray;",
            "@LoRA(rank = 2, alpha = 4)",
            "public final class TorchLinear {",
            "  @Weight(layout = WeightLayout.OUT_IN) final INDArray weight;",
            "  public TorchLinear(INDArray weight) { this.weight = weight; }",
            "  public INDArray forward(INDArray x) { return x.mmul(weight.transpose()); }",
            "}");

    private static final JavaFileObject ATTENTION = JavaFileObjects.forSourceLines("com.example.Attention",
            "package com.example;",
            "import io.peft4j.annotations.*;",
            "import org.nd4j.autodiff.samediff.SDVariable;",
            "public final class Attention {",
            "  static final class Projection {",
            "    @Weight final SDVariable weight = null;",
            "    public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
            "  }",
            "  @LoRA(rank = 8) final Projection query = new Projection();",
            "  @LoRA(rank = 8) final Projection value = new Projection();",
            "  final Projection key = new Projection();",
            "}");

    private static Compilation compile(JavaFileObject... sources) {
        Compilation compilation = javac().withProcessors(new PeftProcessor()).compile(sources);
        assertThat(compilation).succeededWithoutWarnings();
        return compilation;
    }

    @Test
    void registersOneAccessorPerLayerClassAsAService() {
        Compilation compilation = compile(TORCH_LINEAR, ATTENTION);
        assertThat(compilation)
                .generatedFile(StandardLocation.CLASS_OUTPUT, "META-INF/services/io.peft4j.runtime.spi.WeightAccessor")
                .contentsAsUtf8String()
                .isEqualTo("com.example.TorchLinear_LoRA\ncom.example.Attention_Projection_LoRA\n");
        assertThat(compilation).generatedSourceFile("com.example.Attention_Projection_LoRA").contentsAsUtf8String()
                .contains("@Generated(\"io.peft4j.processor.PeftProcessor\")");
    }

    @Test
    void generatedMergeAddsTheTransposedDeltaForOutInWeightsAndUnmergeRemovesIt() throws Exception {
        ClassLoader loader = new CompiledClasses(compile(TORCH_LINEAR));
        Class<?> layerClass = loader.loadClass("com.example.TorchLinear");
        Class<?> accessorClass = loader.loadClass("com.example.TorchLinear_LoRA");

        INDArray weight = Nd4j.rand(DataType.FLOAT, 5, 3); // [out 5, in 3]
        INDArray original = weight.dup();
        Object layer = layerClass.getConstructor(INDArray.class).newInstance(weight);
        LoraWeights lora = new LoraWeights(Nd4j.rand(DataType.FLOAT, 3, 2), Nd4j.rand(DataType.FLOAT, 2, 5), 2.0);

        accessorClass.getMethod("merge", layerClass, LoraWeights.class).invoke(null, layer, lora);
        INDArray expected = original.add(lora.a().mmul(lora.b()).muli(2.0).transpose());
        assertTrue(expected.equalsWithEps(weight, 1e-6), "W += s·(A·B)ᵀ, written into the layer's own array");

        accessorClass.getMethod("unmerge", layerClass, LoraWeights.class).invoke(null, layer, lora);
        assertTrue(original.equalsWithEps(weight, 1e-6));

        @SuppressWarnings("unchecked")
        WeightAccessor<Object> accessor = (WeightAccessor<Object>) accessorClass.getConstructor().newInstance();
        assertEquals(layerClass, accessor.layerType());
        assertEquals(WeightLayout.OUT_IN, accessor.layout());
        assertEquals("weight", accessor.weightName());
        assertTrue(accessor.weight(layer) == weight, "the accessor returns the field itself");
    }

    /** Loads the classes javac wrote in memory. */
    private static final class CompiledClasses extends ClassLoader {
        private final Map<String, JavaFileObject> classes = new HashMap<>();

        CompiledClasses(Compilation compilation) {
            super(GeneratedAccessorTest.class.getClassLoader());
            for (JavaFileObject file : compilation.generatedFiles()) {
                if (file.getKind() == JavaFileObject.Kind.CLASS) {
                    String path = file.toUri().getPath();
                    String name = path.substring(path.indexOf("CLASS_OUTPUT/") + "CLASS_OUTPUT/".length(), path.length() - 6);
                    classes.put(name.replace('/', '.'), file);
                }
            }
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            JavaFileObject file = classes.get(name);
            if (file == null) {
                throw new ClassNotFoundException(name);
            }
            try (InputStream in = file.openInputStream()) {
                byte[] bytes = in.readAllBytes();
                return defineClass(name, bytes, 0, bytes.length);
            } catch (IOException e) {
                throw new ClassNotFoundException(name, e);
            }
        }
    }
}
