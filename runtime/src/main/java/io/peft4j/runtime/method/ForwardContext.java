package io.peft4j.runtime.method;

import org.nd4j.autodiff.samediff.SDVariable;

/**
 * What a method's forward extension needs to know about the {@code PeftModel} it belongs to while a
 * graph is being built. Extensions hold this, never the model itself, so that they do not keep the
 * user's model alive.
 */
public interface ForwardContext {

    /** The token that identifies the owning {@code PeftModel} to the dispatcher. */
    Object owner();

    /** Whether adapters are disabled: forward calls made now add no adapter at all. */
    boolean adaptersDisabled();

    /** Whether the graph being built now routes each row of a batch to its own adapter. */
    boolean mixedBatch();

    /**
     * For a mixed-batch graph: 1 for the rows of the batch that name adapter {@code adapterId}, 0 for
     * the others, shaped {@code [batch, 1, …, 1]} to broadcast against {@code output [batch, …]}.
     */
    SDVariable rowMask(int adapterId, SDVariable output);
}
