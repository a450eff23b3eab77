package io.peft4j.spark;

import io.peft4j.runtime.PeftException;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/** Checks that need the executors, run as a small ordinary job before a barrier stage ties them up. */
final class ExecutorChecks {

    private ExecutorChecks() {
    }

    /**
     * Loads the base on {@code tasks} tasks (and keeps it in their JVMs for the run); a failure names
     * the base and the cause. Says on the driver's standard error which {@code spark.executorEnv.*}
     * settings the executors lack ({@link ExecutorEnvironment}).
     */
    static void baseLoads(SparkSession spark, ModelSource<?> source, int tasks) {
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < tasks; i++) {
            slots.add(i);
        }
        try {
            List<ExecutorEnvironment> environments = new JavaSparkContext(spark.sparkContext()).parallelize(slots, tasks)
                    .map(slot -> {
                        BaseWeightsCache.get(source);
                        return ExecutorEnvironment.ofThisJvm();
                    }).collect();
            ExecutorEnvironment.advice(environments, spark.sparkContext().isLocal()).ifPresent(System.err::println);
        } catch (Exception e) { // Spark rethrows a task's failure as a SparkException, undeclared
            Throwable cause = e;
            while (cause.getCause() != null && cause.getCause() != cause) {
                cause = cause.getCause();
            }
            throw new PeftException("The executors cannot load the base '" + source.baseName() + "' (" + source.getClass().getName()
                    + ".loadBase()): " + cause.getMessage() + ". Put it where every executor can read it, e.g. on a shared file "
                    + "system, or ship it with --files", e);
        }
    }
}
