package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;

/**
 * Whether the peft4j agent has instrumented this JVM.
 *
 * <p>The agent announces itself through a system property rather than a class of the runtime, so
 * that the agent jar and the runtime jar can be loaded by different class loaders.
 */
public final class AgentStatus {

    /** Set to {@code true} by the agent once its transformer is installed. */
    public static final String INSTALLED_PROPERTY = "io.peft4j.agent.installed";

    private AgentStatus() {
    }

    public static boolean isInstalled() {
        return Boolean.getBoolean(INSTALLED_PROPERTY);
    }

    public static void requireInstalled(String action) {
        if (!isInstalled()) {
            throw new PeftException("Cannot " + action + ": the peft4j agent is not installed in this JVM. Launch with "
                    + "-javaagent:/path/to/peft4j-agent.jar, or call io.peft4j.agent.PeftAgent.install() before the "
                    + "model's graph is built; without it no LoRA branch can join the layers' forward methods.");
        }
    }
}
