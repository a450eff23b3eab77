package io.peft4j.processor;

import static com.google.testing.compile.Compiler.javac;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import java.util.Arrays;
import java.util.stream.Stream;
import javax.tools.JavaFileObject;

/** Sources in {@code com.example} with peft4j's annotations imported, compiled with {@link PeftProcessor}. */
final class CompileFixtures {

    /** A linear layer with one {@code @Weight}: what LoRA, (IA)³ and prompt tuning accept. */
    static final JavaFileObject PROJECTION = source("Projection",
            "public final class Projection {",
            "  @Weight final SDVariable weight = null;",
            "  public SDVariable forward(SDVariable x) { return x.mmul(weight); }",
            "}");

    private CompileFixtures() {
    }

    static JavaFileObject source(String className, String... lines) {
        return JavaFileObjects.forSourceLines("com.example." + className, Stream.concat(Stream.of(
                "package com.example;",
                "import io.peft4j.annotations.*;",
                "import org.nd4j.autodiff.samediff.SDVariable;"), Arrays.stream(lines)).toArray(String[]::new));
    }

    static Compilation compile(JavaFileObject... sources) {
        return javac().withProcessors(new PeftProcessor()).compile(sources);
    }
}
