package io.peft4j.agent;

import static net.bytebuddy.matcher.ElementMatchers.declaresMethod;
import static net.bytebuddy.matcher.ElementMatchers.isAbstract;
import static net.bytebuddy.matcher.ElementMatchers.isAnnotatedWith;
import static net.bytebuddy.matcher.ElementMatchers.isInterface;
import static net.bytebuddy.matcher.ElementMatchers.isPublic;
import static net.bytebuddy.matcher.ElementMatchers.isStatic;
import static net.bytebuddy.matcher.ElementMatchers.isSynthetic;
import static net.bytebuddy.matcher.ElementMatchers.nameStartsWith;
import static net.bytebuddy.matcher.ElementMatchers.named;
import static net.bytebuddy.matcher.ElementMatchers.not;
import static net.bytebuddy.matcher.ElementMatchers.returns;
import static net.bytebuddy.matcher.ElementMatchers.takesArguments;

import net.bytebuddy.description.method.MethodDescription;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.matcher.ElementMatcher;

/**
 * Which classes and methods the agent instruments. Annotations are matched by name, so matching
 * loads no peft4j class into the application's class loaders.
 */
final class LayerMatchers {

    static final String FORWARD = "io.peft4j.annotations.Forward";

    private LayerMatchers() {
    }

    /**
     * Every layer class: a class that declares a forward method (see {@link #forwardMethodOf}).
     * Which instances are adapted, and how, is decided per instance by the runtime when a
     * {@code PeftModel} attaches: a {@code @LoRA} or {@code @Adapter} field can hold any layer class,
     * and the field is not known when the class loads. Instances nobody adapted pass through the
     * dispatcher unchanged.
     */
    static ElementMatcher.Junction<TypeDescription> layerClasses() {
        return not(isInterface()).and(declaresMethod(forwardCandidates()));
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
     * public instance methods named {@code forward}; always a concrete instance method that takes the
     * input as first parameter and returns the output.
     */
    static ElementMatcher<MethodDescription> forwardMethodOf(TypeDescription type) {
        ElementMatcher.Junction<MethodDescription> marked = isAnnotatedWith(named(FORWARD)).and(concrete());
        boolean marks = !type.getDeclaredMethods().filter(marked).isEmpty();
        return marks ? marked : named("forward").and(isPublic()).and(concrete());
    }

    private static ElementMatcher.Junction<MethodDescription> forwardCandidates() {
        return isAnnotatedWith(named(FORWARD)).or(named("forward").and(isPublic())).and(concrete());
    }

    private static ElementMatcher.Junction<MethodDescription> concrete() {
        return not(isStatic()).and(not(isAbstract())).and(not(takesArguments(0))).and(not(returns(void.class)));
    }
}
