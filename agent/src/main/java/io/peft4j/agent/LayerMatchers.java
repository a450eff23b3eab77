package io.peft4j.agent;

import static net.bytebuddy.matcher.ElementMatchers.declaresField;
import static net.bytebuddy.matcher.ElementMatchers.isAbstract;
import static net.bytebuddy.matcher.ElementMatchers.isAnnotatedWith;
import static net.bytebuddy.matcher.ElementMatchers.isInterface;
import static net.bytebuddy.matcher.ElementMatchers.isPublic;
import static net.bytebuddy.matcher.ElementMatchers.isStatic;
import static net.bytebuddy.matcher.ElementMatchers.isSynthetic;
import static net.bytebuddy.matcher.ElementMatchers.nameStartsWith;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.not;
import static net.bytebuddy.matcher.ElementMatchers.takesArguments;

import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.matcher.ElementMatcher;

/**
 * Which classes and methods the agent instruments. Annotations are matched by name, so matching
 * loads no peft4j class into the application's class loaders.
 */
final class LayerMatchers {

    static final String LORA = "io.peft4j.annotations.LoRA";
    static final String WEIGHT = "io.peft4j.annotations.Weight";
    static final String FORWARD = "io.peft4j.annotations.Forward";

    private LayerMatchers() {
    }

    /**
     * Classes annotated {@code @LoRA}, and every class with a {@code @Weight} field: the latter is
     * what makes a class the type of a {@code @LoRA} field (the processor enforces it), and it can be
     * recognised when the class loads, before any field that refers to it is seen.
     */
    static ElementMatcher.Junction<TypeDescription> adaptableLayers() {
        return not(isInterface()).and(isAnnotatedWith(named(LORA)).or(declaresField(isAnnotatedWith(named(WEIGHT)))));
    }

    /** JDK, ND4J and peft4j's own classes (with the relocated Byte Buddy) are never layers. */
    static ElementMatcher.Junction<TypeDescription> neverInstrumented() {
        return isSynthetic().or(nameStartsWith("java.")).or(nameStartsWith("javax.")).or(nameStartsWith("jdk."))
                .or(nameStartsWith("sun.")).or(nameStartsWith("com.sun.")).or(nameStartsWith("org.nd4j."))
                .or(nameStartsWith("org.bytedeco.")).or(nameStartsWith("net.bytebuddy."))
                .or(nameStartsWith("io.peft4j.agent.")).or(nameStartsWith("io.peft4j.runtime."));
    }

    /**
     * The layer's forward method: the one marked {@code @Forward} if the class marks one, else its
     * public instance methods named {@code forward} that take the input as first parameter.
     */
    static ElementMatcher<MethodDescription> forwardMethodOf(TypeDescription type) {
        ElementMatcher.Junction<MethodDescription> concrete = not(isStatic()).and(not(isAbstract())).and(not(takesArguments(0)));
        ElementMatcher.Junction<MethodDescription> marked = isAnnotatedWith(named(FORWARD));
        boolean marks = !type.getDeclaredMethods().filter(marked).isEmpty();
        return marks ? marked.and(concrete) : named("forward").and(isPublic()).and(concrete);
    }
}
