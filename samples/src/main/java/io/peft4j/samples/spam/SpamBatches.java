package io.peft4j.samples.spam;

import io.peft4j.samples.minilm.MiniLmTokenizer;
import java.util.ArrayList;
import java.util.List;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Tokenised mini-batches of emails: features token ids, token types and attention mask
 * {@code [batch, T]} (INT32, padded to the longest in the batch), labels one-hot {@code [batch, 2]}
 * (ham, spam).
 */
public final class SpamBatches implements MultiDataSetIterator {

    private final List<MultiDataSet> batches;
    private int cursor;

    public SpamBatches(List<Email> emails, MiniLmTokenizer tokenizer, int maxLength, int batchSize) {
        this.batches = new ArrayList<>();
        for (int start = 0; start < emails.size(); start += batchSize) {
            batches.add(batch(emails.subList(start, Math.min(emails.size(), start + batchSize)), tokenizer, maxLength));
        }
    }

    /** One batch of {@code emails}: features ids, types, mask {@code [n, T]} padded to the longest, labels {@code [n, 2]}. */
    public static MultiDataSet batch(List<Email> emails, MiniLmTokenizer tokenizer, int maxLength) {
        List<MiniLmTokenizer.Encoded> encoded = emails.stream().map(email -> tokenizer.encode(email.text(), maxLength)).toList();
        int length = encoded.stream().mapToInt(e -> e.ids().length).max().orElse(1);
        int[][] ids = new int[emails.size()][length];
        int[][] types = new int[emails.size()][length];
        int[][] mask = new int[emails.size()][length];
        float[][] labels = new float[emails.size()][2];
        for (int row = 0; row < emails.size(); row++) {
            MiniLmTokenizer.Encoded e = encoded.get(row);
            System.arraycopy(e.ids(), 0, ids[row], 0, e.ids().length);
            System.arraycopy(e.typeIds(), 0, types[row], 0, e.typeIds().length);
            System.arraycopy(e.attentionMask(), 0, mask[row], 0, e.attentionMask().length);
            labels[row][emails.get(row).spam() ? 1 : 0] = 1;
        }
        return new MultiDataSet(new INDArray[] {Nd4j.createFromArray(ids), Nd4j.createFromArray(types), Nd4j.createFromArray(mask)},
                new INDArray[] {Nd4j.createFromArray(labels)});
    }

    public List<MultiDataSet> batches() {
        return batches;
    }

    public int size() {
        return batches.size();
    }

    @Override
    public boolean hasNext() {
        return cursor < batches.size();
    }

    @Override
    public MultiDataSet next() {
        return batches.get(cursor++);
    }

    @Override
    public MultiDataSet next(int num) {
        return next();
    }

    @Override
    public boolean resetSupported() {
        return true;
    }

    @Override
    public boolean asyncSupported() {
        return false;
    }

    @Override
    public void reset() {
        cursor = 0;
    }

    @Override
    public void setPreProcessor(MultiDataSetPreProcessor preProcessor) {
        throw new UnsupportedOperationException("SpamBatches serves the batches as tokenised");
    }

    @Override
    public MultiDataSetPreProcessor getPreProcessor() {
        return null;
    }
}
