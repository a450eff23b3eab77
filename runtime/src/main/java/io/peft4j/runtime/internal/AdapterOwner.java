package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.method.ForwardContext;
import java.util.HashMap;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * The state of one {@code PeftModel} that its forward extensions read while graphs are built: whether
 * adapters are disabled, and the adapter-per-row input of a mixed-batch graph being built. It refers
 * to nothing of the user's model, so extensions that hold it keep no model alive.
 */
public final class AdapterOwner implements ForwardContext {

    private volatile boolean disabled;
    private SDVariable rowAdapters;
    private final Map<Integer, SDVariable> rowMasks = new HashMap<>();

    @Override
    public Object owner() {
        return this;
    }

    @Override
    public boolean adaptersDisabled() {
        return disabled;
    }

    public void setDisabled(boolean disabled) {
        this.disabled = disabled;
    }

    @Override
    public synchronized boolean mixedBatch() {
        return rowAdapters != null;
    }

    /** Forward calls made from now on route each row to the adapter {@code rowAdapters [batch]} (INT32) names. */
    public synchronized void beginMixedBatch(SDVariable rowAdapters) {
        this.rowAdapters = rowAdapters;
        rowMasks.clear();
    }

    public synchronized void endMixedBatch() {
        this.rowAdapters = null;
        rowMasks.clear();
    }

    @Override
    public synchronized SDVariable rowMask(int adapterId, SDVariable output) {
        if (rowAdapters == null) {
            throw new IllegalStateException("no mixed-batch graph is being built");
        }
        SameDiff sd = output.getSameDiff();
        if (sd != rowAdapters.getSameDiff()) {
            throw new PeftException("A mixed-batch graph must be built in the SameDiff that holds the adapter-per-row input '"
                    + rowAdapters.name() + "'");
        }
        SDVariable mask = rowMasks.computeIfAbsent(adapterId, id -> rowAdapters.eq(id).castTo(output.dataType()));
        // [batch] → [batch, 1, …, 1] with the output's rank, known only when the graph runs
        SDVariable shape = output.shape();
        SDVariable batch = sd.stridedSlice(shape, new long[] {0}, new long[] {1}, new long[] {1});
        SDVariable rest = sd.stridedSlice(shape, new long[] {1}, new long[] {0}, new long[] {1}, 0, 1, 0, 0, 0);
        return sd.reshape(mask, sd.concat(0, batch, sd.onesLike(rest)));
    }
}
