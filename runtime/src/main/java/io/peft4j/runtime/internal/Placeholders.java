package io.peft4j.runtime.internal;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/** A batch's arrays by placeholder name, as a training config maps them (features, labels, then their masks). */
public final class Placeholders {

    private Placeholders() {
    }

    public static Map<String, INDArray> of(TrainingConfig config, MultiDataSet batch) {
        Map<String, INDArray> byName = new HashMap<>();
        putAll(byName, config.getDataSetFeatureMapping(), batch.getFeatures());
        putAll(byName, config.getDataSetLabelMapping(), batch.getLabels());
        putAll(byName, config.getDataSetFeatureMaskMapping(), batch.getFeaturesMaskArrays());
        putAll(byName, config.getDataSetLabelMaskMapping(), batch.getLabelsMaskArrays());
        return byName;
    }

    private static void putAll(Map<String, INDArray> byName, List<String> names, INDArray[] arrays) {
        if (names == null || arrays == null) {
            return;
        }
        for (int i = 0; i < names.size() && i < arrays.length; i++) {
            if (arrays[i] != null) {
                byName.put(names.get(i), arrays[i]);
            }
        }
    }
}
