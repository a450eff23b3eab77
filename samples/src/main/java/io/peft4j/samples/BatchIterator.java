package io.peft4j.samples;

import java.util.List;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.api.DataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.indexing.NDArrayIndex;

/** Fixed-order mini-batches of {@code batchSize} rows over an in-memory {@link DataSet}. */
public final class BatchIterator implements DataSetIterator {

    private final DataSet data;
    private final int batchSize;
    private int cursor;

    public BatchIterator(DataSet data, int batchSize) {
        this.data = data;
        this.batchSize = batchSize;
    }

    @Override
    public boolean hasNext() {
        return cursor < data.numExamples();
    }

    @Override
    public DataSet next() {
        return next(batchSize);
    }

    @Override
    public DataSet next(int num) {
        int end = Math.min(cursor + num, data.numExamples());
        DataSet batch = new DataSet(data.getFeatures().get(NDArrayIndex.interval(cursor, end), NDArrayIndex.all()).dup(),
                data.getLabels().get(NDArrayIndex.interval(cursor, end), NDArrayIndex.all()).dup());
        cursor = end;
        return batch;
    }

    @Override
    public int inputColumns() {
        return (int) data.getFeatures().size(1);
    }

    @Override
    public int totalOutcomes() {
        return (int) data.getLabels().size(1);
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
    public int batch() {
        return batchSize;
    }

    @Override
    public void setPreProcessor(DataSetPreProcessor preProcessor) {
        throw new UnsupportedOperationException("BatchIterator serves the data as generated");
    }

    @Override
    public DataSetPreProcessor getPreProcessor() {
        return null;
    }

    @Override
    public List<String> getLabels() {
        return null;
    }
}
