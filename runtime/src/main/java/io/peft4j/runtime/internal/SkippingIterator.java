package io.peft4j.runtime.internal;

import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;

/**
 * The rest of an epoch: its delegate with the first {@code skip} batches passed over after every reset,
 * so that a resumed run continues where the checkpoint left the interrupted epoch. The delegate must
 * give the same batches in the same order every epoch for that to be the same data.
 */
public final class SkippingIterator implements MultiDataSetIterator {

    private final MultiDataSetIterator delegate;
    private final int skip;

    public SkippingIterator(MultiDataSetIterator delegate, int skip) {
        this.delegate = delegate;
        this.skip = skip;
        skipAhead();
    }

    private void skipAhead() {
        for (int i = 0; i < skip && delegate.hasNext(); i++) {
            delegate.next();
        }
    }

    @Override
    public MultiDataSet next(int num) {
        return delegate.next(num);
    }

    @Override
    public void setPreProcessor(MultiDataSetPreProcessor preProcessor) {
        delegate.setPreProcessor(preProcessor);
    }

    @Override
    public MultiDataSetPreProcessor getPreProcessor() {
        return delegate.getPreProcessor();
    }

    @Override
    public boolean resetSupported() {
        return delegate.resetSupported();
    }

    @Override
    public boolean asyncSupported() {
        return false;
    }

    @Override
    public void reset() {
        delegate.reset();
        skipAhead();
    }

    @Override
    public boolean hasNext() {
        return delegate.hasNext();
    }

    @Override
    public MultiDataSet next() {
        return delegate.next();
    }
}
