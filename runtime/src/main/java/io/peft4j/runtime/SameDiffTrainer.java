package io.peft4j.runtime;

import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;

/**
 * Trains a SameDiff graph's trainable variables with a {@link TrainingConfig} over a
 * {@link DataSetIterator}, printing progress.
 *
 * <p>Used as is for full fine-tuning; {@link PeftModel#train} freezes the base model first so that
 * only the adapters are trained. For AdamW, use {@code Adam} with
 * {@code TrainingConfig.Builder.weightDecay(coefficient, true)}: ND4J's {@code WeightDecay} is
 * decoupled from the gradient, as in AdamW.
 */
public final class SameDiffTrainer {

    /** Progress lines go here every this many steps by default. */
    public static final int DEFAULT_PROGRESS_INTERVAL = 25;

    private SameDiffTrainer() {
    }

    /** Trains for {@code epochs} epochs, printing progress to standard output. */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, DataSetIterator data, int epochs) {
        return fit(sameDiff, config, data, epochs, new ProgressListener(System.out, DEFAULT_PROGRESS_INTERVAL));
    }

    /** Trains for {@code epochs} epochs, reporting to {@code progress}. */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, DataSetIterator data, int epochs,
                                     ProgressListener progress) {
        if (epochs <= 0) {
            throw new IllegalArgumentException("epochs must be positive, got " + epochs);
        }
        sameDiff.setTrainingConfig(config);
        sameDiff.fit(data, epochs, progress);
        return progress.report();
    }
}
