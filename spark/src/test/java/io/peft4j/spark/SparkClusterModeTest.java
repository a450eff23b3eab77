package io.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.testmodel.ClassifierModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The cluster path: {@code local-cluster[2,1,1536]} runs two executors in JVMs of their own, started the way
 * a Spark distribution starts them, with only Maven's class path. One session passes the agent as a real
 * cluster would ({@code spark.executor.extraJavaOptions=-javaagent:...}); the other starts executors without
 * it, and they attach it themselves. Both must train what {@code local[2]} trains.
 */
class SparkClusterModeTest {

    private static SparkSession cluster(boolean agentOnCommandLine) throws Exception {
        Files.createDirectories(Path.of(System.getenv("SPARK_HOME"), "jars"));
        String options = System.getProperty("spark.java.options") + " -Dorg.bytedeco.javacpp.maxbytes=2G"
                + (agentOnCommandLine ? " -javaagent:" + System.getProperty("peft4j.agent.jar") : "");
        return SparkSession.builder().master("local-cluster[2,1,1536]").appName("peft4j-cluster-test")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.executorEnv.SPARK_SCALA_VERSION", "2.13")
                .config("spark.executor.extraClassPath", System.getProperty("java.class.path"))
                .config("spark.executor.extraJavaOptions", options)
                .getOrCreate();
    }

    /** Each executor's process id and whether the agent runs there. */
    private static Set<String> executors(SparkSession spark) {
        return new TreeSet<>(new JavaSparkContext(spark.sparkContext()).parallelize(List.of(0, 1, 2, 3), 4)
                .map(i -> ProcessHandle.current().pid() + (Boolean.getBoolean("io.peft4j.agent.installed") ? " with agent" : " without agent"))
                .collect());
    }

    private static Map<String, INDArray> trainIn(SparkSession spark) {
        TrainedAdapter<ClassifierModel> trained = SparkAdapterTraining.builder(new ClassifierJob(null, 0)).workers(2).globalBatch(8).epochs(1)
                .updater(new org.nd4j.linalg.learning.config.Adam(0.01)).build()
                .fit(SparkAdapterTrainingTest.dataset(spark));
        return trained.parameters();
    }

    @Test
    void executorsInTheirOwnJvmsTrainWhatLocalModeTrains() throws Exception {
        Map<String, INDArray> local;
        SparkSession spark = SparkAdapterTrainingTest.localSession();
        try {
            local = trainIn(spark);
        } finally {
            spark.stop();
        }
        for (boolean agentOnCommandLine : new boolean[] {true, false}) {
            spark = cluster(agentOnCommandLine);
            try {
                Set<String> before = executors(spark);
                Map<String, INDArray> remote = trainIn(spark);
                Set<String> after = executors(spark);
                System.out.println("local-cluster executors (agent on the command line: " + agentOnCommandLine + "): before " + before
                        + ", after training " + after + "; driver " + ProcessHandle.current().pid());
                assertEquals(2, after.size(), "two executor JVMs: " + after);
                after.forEach(executor -> assertNotEquals(String.valueOf(ProcessHandle.current().pid()), executor.split(" ")[0]));
                assertTrue(after.stream().allMatch(executor -> executor.endsWith(" with agent")), "the agent runs in every executor: " + after);
                if (agentOnCommandLine) {
                    assertTrue(before.stream().allMatch(executor -> executor.endsWith(" with agent")), before.toString());
                } else {
                    assertTrue(before.stream().allMatch(executor -> executor.endsWith(" without agent")), before.toString());
                }
                for (String name : local.keySet()) {
                    assertEquals(0.0, local.get(name).sub(remote.get(name)).amaxNumber().doubleValue(), 0.0,
                            name + ": the same arithmetic in other JVMs");
                }
            } finally {
                spark.stop();
            }
        }
    }
}
