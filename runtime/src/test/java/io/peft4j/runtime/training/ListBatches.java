package io.peft4j.runtime.training;

import java.util.List;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;

/** Fixed batches in a fixed order, every epoch. */
public final class ListBatches implements MultiDataSetIterator {

    private final List<MultiDataSet> batches;
    private int cursor;

    public ListBatches(List<MultiDataSet> batches) {
        this.batches = batches;
    }

    @Override
    public MultiDataSet next(int num) {
        throw new UnsupportedOperationException("batches are fixed");
    }

    @Override
    public void setPreProcessor(MultiDataSetPreProcessor preProcessor) {
        throw new UnsupportedOperationException("no preprocessing");
    }

    @Override
    public MultiDataSetPreProcessor getPreProcessor() {
        return null;
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
    public boolean hasNext() {
        return cursor < batches.size();
    }

    @Override
    public MultiDataSet next() {
        return batches.get(cursor++);
    }
}
