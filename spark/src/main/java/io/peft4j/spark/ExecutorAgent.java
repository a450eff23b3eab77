package io.peft4j.spark;

import io.peft4j.agent.PeftAgent;
import io.peft4j.runtime.PeftException;

/**
 * Makes sure the peft4j agent runs in this executor before a model is built. An executor started with
 * {@code spark.executor.extraJavaOptions=-javaagent:/path/peft4j-agent.jar} has it already; otherwise it is
 * attached to the running JVM (Byte Buddy's self-attach, which needs a JDK rather than a bare JRE), once.
 */
final class ExecutorAgent {

    private static final String INSTALLED = "io.peft4j.agent.installed";

    private ExecutorAgent() {
    }

    static synchronized void ensure() {
        if (Boolean.getBoolean(INSTALLED)) {
            return;
        }
        try {
            PeftAgent.install();
        } catch (RuntimeException | LinkageError e) {
            throw new PeftException("This executor runs without the peft4j agent and could not attach it (" + e
                    + "): start executors with spark.executor.extraJavaOptions=-javaagent:<path to peft4j-agent.jar on every node>", e);
        }
        if (!Boolean.getBoolean(INSTALLED)) {
            throw new PeftException("The peft4j agent could not be attached to this executor: start executors with "
                    + "spark.executor.extraJavaOptions=-javaagent:<path to peft4j-agent.jar on every node>");
        }
        System.err.println("[peft4j] executor started without -javaagent: attached the agent to the running JVM");
    }
}
