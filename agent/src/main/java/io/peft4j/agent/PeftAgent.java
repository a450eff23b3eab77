package io.peft4j.agent;

import io.peft4j.runtime.internal.AgentStatus;
import java.lang.instrument.Instrumentation;
import net.bytebuddy.agent.ByteBuddyAgent;
import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.asm.Advice;

/**
 * The peft4j Java agent: wraps the forward method of every layer class (a class with a public
 * {@code forward} method or a {@code @Forward} method) so that its result passes through the
 * peft4j runtime, which adds the adapters of the instances a {@code PeftModel} adapted.
 *
 * <p>Launch with {@code -javaagent:peft4j-agent.jar}, or call {@link #install()} in a running JVM
 * (tests, notebooks). Classes already loaded are retransformed, so {@code install()} may come after
 * the model classes were loaded. Instrumented layers whose instances no {@code PeftModel} adapted
 * behave exactly as before.
 */
public final class PeftAgent {

    private static boolean installed;

    private PeftAgent() {
    }

    /** Entry point for {@code -javaagent:}. Never throws: a failure is printed and the application runs on. */
    public static void premain(String arguments, Instrumentation instrumentation) {
        agentmain(arguments, instrumentation);
    }

    /** Entry point for dynamic attach. Never throws: a failure is printed and the application runs on. */
    public static void agentmain(String arguments, Instrumentation instrumentation) {
        try {
            install(instrumentation);
        } catch (Throwable failure) {
            System.err.println("[peft4j] the agent could not be installed; PEFT layers will not be adapted: " + failure);
            failure.printStackTrace();
        }
    }

    /** Attaches the agent to the running JVM (through Byte Buddy's self-attach) and installs it. */
    public static void install() {
        install(ByteBuddyAgent.install());
    }

    /** Installs the transformation with {@code instrumentation}; a second call does nothing. */
    public static synchronized void install(Instrumentation instrumentation) {
        if (installed) {
            return;
        }
        new AgentBuilder.Default()
                .disableClassFormatChanges()
                .with(AgentBuilder.RedefinitionStrategy.RETRANSFORMATION)
                // Describe types from their class files, not by reflection: reflecting on an already
                // loaded layer (to retransform it) loads the classes of its fields, and a class loaded
                // while a transformation runs is never instrumented (Byte Buddy's circularity lock).
                // A test that built a SelfAttention before install() left Linear, the type of its
                // fields, uninstrumented, and every LoRA branch on a Linear was silently missing.
                .with(AgentBuilder.DescriptionStrategy.Default.POOL_FIRST)
                .with(new TransformationLogger(Boolean.getBoolean(TransformationLogger.VERBOSE_PROPERTY)))
                .ignore(LayerMatchers.neverInstrumented())
                .type(LayerMatchers.layerClasses())
                .transform((builder, type, classLoader, module, protectionDomain) ->
                        builder.visit(Advice.to(ForwardAdvice.class).on(LayerMatchers.forwardMethodOf(type))))
                .installOn(instrumentation);
        installed = true;
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }
}
