package io.peft4j.samples.spam;

import io.peft4j.runtime.PeftModel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * A saved adapter loaded into a fresh all-MiniLM-L6-v2 (pretrained weights only, its classifier
 * initialised with another seed) reproduces the trained model's test predictions: the adapter
 * directory and the base weights alone are the trained classifier. A second copy of the adapter is
 * loaded too, to time a switch between two adapters on the real model.
 *
 * @param predictions        test messages compared
 * @param identical          of them, predicted the same class
 * @param maxLogitDifference the largest |logit difference|
 * @param switchMicros       the median time of one {@code setAdapter} between the two adapters, µs
 */
public record ReloadCheck(int predictions, int identical, double maxLogitDifference, double switchMicros) {

    private static final int SWITCHES = 400;

    public static ReloadCheck run(Path adapterDir, Map<String, INDArray> pretrained, long seed, SpamBatches test,
                                  List<INDArray> expectedLogits) {
        SpamClassifier fresh = new SpamClassifier(SameDiff.create(), pretrained, seed + 1);
        PeftModel peft = PeftModel.fromPretrained(fresh, adapterDir);
        peft.addAdapter("copy", adapterDir);
        SpamGraph graph = new SpamGraph(fresh);
        double[] switches = new double[SWITCHES];
        for (int i = 0; i < SWITCHES; i++) {
            long start = System.nanoTime();
            peft.setAdapter(i % 2 == 0 ? "copy" : "default");
            switches[i] = (System.nanoTime() - start) / 1e3;
        }
        Arrays.sort(switches);
        List<INDArray> logits = graph.evaluate(test).logits();
        int identical = 0;
        int predictions = 0;
        double worst = 0;
        for (int i = 0; i < logits.size(); i++) {
            INDArray expected = expectedLogits.get(i);
            INDArray actual = logits.get(i);
            worst = Math.max(worst, Transforms.abs(expected.sub(actual)).maxNumber().doubleValue());
            INDArray same = expected.argMax(1).eq(actual.argMax(1));
            for (int row = 0; row < same.length(); row++) {
                identical += same.getInt(row);
                predictions++;
            }
        }
        return new ReloadCheck(predictions, identical, worst, switches[SWITCHES / 2]);
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%d of %d test predictions identical, max |logit difference| %s; setAdapter between two "
                + "adapters: %.0f µs (median of %d)", identical, predictions, maxLogitDifference == 0 ? "0 (bit-identical)"
                : String.format(Locale.ROOT, "%.3e", maxLogitDifference), switchMicros, SWITCHES);
    }
}
