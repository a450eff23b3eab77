package io.peft4j.agent;

import net.bytebuddy.agent.builder.AgentBuilder;
import net.bytebuddy.description.type.TypeDescription;
import net.bytebuddy.dynamic.DynamicType;
import net.bytebuddy.utility.JavaModule;

/**
 * Prints every failed transformation (a layer that could not be instrumented will not be adapted),
 * and with {@code -Dio.peft4j.agent.verbose=true} every instrumented layer class as well.
 */
final class TransformationLogger extends AgentBuilder.Listener.Adapter {

    static final String VERBOSE_PROPERTY = "io.peft4j.agent.verbose";

    private final boolean verbose;

    TransformationLogger(boolean verbose) {
        this.verbose = verbose;
    }

    @Override
    public void onTransformation(TypeDescription type, ClassLoader classLoader, JavaModule module, boolean loaded,
                                 DynamicType dynamicType) {
        if (verbose) {
            System.err.println("[peft4j] instrumented the forward method of " + type.getName());
        }
    }

    @Override
    public void onError(String typeName, ClassLoader classLoader, JavaModule module, boolean loaded, Throwable error) {
        System.err.println("[peft4j] could not instrument " + typeName + "; its instances will not be adapted: " + error);
    }
}
