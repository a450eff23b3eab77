package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/** Models peft4j no longer references can be collected, and two models train in two threads as they would one after the other. */
class LifecycleTest {

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** Attaches to a fresh model and builds its graph, keeping only weak references to the model, the PeftModel and the graph. */
    private static WeakReference<?>[] attachAndDrop(boolean detach) {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.attach(model);
        model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN));
        if (detach) {
            peft.detach();
        }
        return new WeakReference<?>[] {new WeakReference<>(model), new WeakReference<>(peft), new WeakReference<>(model.sd)};
    }

    private static boolean collected(WeakReference<?>... references) throws InterruptedException {
        for (int attempt = 0; attempt < 50; attempt++) {
            System.gc();
            if (java.util.Arrays.stream(references).allMatch(reference -> reference.get() == null)) {
                return true;
            }
            Thread.sleep(20);
        }
        return false;
    }

    @Test
    void aPeftModelNobodyDetachedIsCollectedWithItsModel() throws InterruptedException {
        WeakReference<?>[] references = attachAndDrop(false);
        assertTrue(collected(references), "the dispatcher holds layers weakly, and their extensions hold them weakly");
        assertNull(references[0].get());
    }

    @Test
    void droppedModelsReleaseTheirGraphsWithoutWaitingForAnotherAttach() throws InterruptedException {
        // The graph (and its weights in native memory) is reachable from the dispatcher's entry for each layer
        // until that entry goes; it must go when the layer is collected, not at the next attach.
        List<WeakReference<?>> graphs = new ArrayList<>();
        for (int model = 0; model < 20; model++) {
            graphs.add(attachAndDrop(false)[2]);
        }
        assertTrue(collected(graphs.toArray(new WeakReference<?>[0])), "every dropped model's SameDiff was collected");
    }

    @Test
    void attachingAndDroppingTwoHundredTimesKeepsHeapAndOffHeapMemoryFlat() throws InterruptedException {
        for (int warmUp = 0; warmUp < 20; warmUp++) {
            attachAndDrop(warmUp % 2 == 0);
        }
        collected(attachAndDrop(true));
        long heapBefore = usedHeap();
        long offHeapBefore = Pointer.totalBytes();
        int layersBefore = ForwardDispatcher.registeredLayers();
        List<WeakReference<?>> last = new ArrayList<>();
        for (int cycle = 0; cycle < 200; cycle++) {
            last = List.of(attachAndDrop(cycle % 2 == 0));
        }
        assertTrue(collected(last.toArray(new WeakReference<?>[0])));
        long heapGrowth = usedHeap() - heapBefore;
        long offHeapGrowth = Pointer.totalBytes() - offHeapBefore;
        System.out.printf("200 attach/drop cycles: heap %+,d bytes, off-heap %+,d bytes, dispatcher entries %d → %d%n", heapGrowth,
                offHeapGrowth, layersBefore, ForwardDispatcher.registeredLayers());
        assertTrue(ForwardDispatcher.registeredLayers() <= layersBefore, "no dispatcher entry left behind");
        assertTrue(heapGrowth < 2L * 1024 * 1024, "heap grew by " + heapGrowth + " bytes");
        assertTrue(offHeapGrowth < 8L * 1024 * 1024, "off-heap grew by " + offHeapGrowth + " bytes");
    }

    private static long usedHeap() throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(20);
        }
        Runtime runtime = Runtime.getRuntime();
        return runtime.totalMemory() - runtime.freeMemory();
    }

    /** Trains a fresh model's LoRA for 30 steps on fixed data; returns A and B of every layer. */
    private static List<float[]> train(long seed) {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, seed);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        SDVariable y = model.sd.placeHolder("y", DataType.FLOAT, -1, TwoLayerModel.OUT);
        PeftModel peft = PeftModel.builder(model).seed(seed).attach();
        model.sd.loss.meanSquaredError("loss", y, model.forward(x), null);
        org.nd4j.linalg.api.rng.Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed + 100);
        INDArray features = Nd4j.rand(random, 32, TwoLayerModel.IN).castTo(DataType.FLOAT);
        INDArray labels = Nd4j.rand(random, 32, TwoLayerModel.OUT).castTo(DataType.FLOAT);
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.02)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        peft.train(config, new SingletonDataSetIterator(new DataSet(features, labels)), 30, new ProgressListener(null, 100));
        List<float[]> values = new ArrayList<>();
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            values.add(layer.weights().a().dup().data().asFloat());
            values.add(layer.weights().b().dup().data().asFloat());
        }
        return values;
    }

    @Test
    void twoModelsTrainInTwoThreadsAsTheyWouldOneAfterTheOther() throws Exception {
        List<float[]> firstAlone = train(3);
        List<float[]> secondAlone = train(4);
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try {
            List<Callable<List<float[]>>> jobs = List.of(() -> train(3), () -> train(4));
            List<Future<List<float[]>>> results = threads.invokeAll(jobs);
            List<float[]> first = results.get(0).get();
            List<float[]> second = results.get(1).get();
            assertEquals(firstAlone.size(), first.size());
            for (int i = 0; i < first.size(); i++) {
                assertArrayEquals(firstAlone.get(i), first.get(i), 0f, "model 3, tensor " + i);
                assertArrayEquals(secondAlone.get(i), second.get(i), 0f, "model 4, tensor " + i);
            }
        } finally {
            threads.shutdownNow();
        }
    }
}
