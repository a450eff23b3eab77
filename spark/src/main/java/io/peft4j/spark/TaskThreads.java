package io.peft4j.spark;

import io.peft4j.runtime.ComputeThreads;
import org.apache.spark.TaskContext;

/**
 * Gives a task's native ops the cores Spark gave the task ({@code spark.task.cpus}, 1 by default), unless
 * {@code -Dpeft4j.threads} says otherwise. OpenMP's thread count belongs to the calling thread, so a Spark
 * task thread would otherwise run every op on all of the machine's cores, and two tasks in one executor JVM
 * would oversubscribe them.
 */
final class TaskThreads {

    private TaskThreads() {
    }

    static void apply() {
        if (System.getProperty(ComputeThreads.PROPERTY) != null) {
            ComputeThreads.apply();
            return;
        }
        TaskContext task = TaskContext.get();
        ComputeThreads.set(Math.max(1, task == null ? 1 : task.cpus()));
    }
}
