package io.peft4j.runtime;

import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A graph in which each row of a batch uses its own adapter, for serving many adapters from one base
 * (Hugging Face PEFT's {@code adapter_names}). Build the graph while the batch is open, then feed
 * {@link #rows} under {@link #placeholderName()} with every run:
 *
 * <pre>{@code
 * SDVariable logits;
 * try (MixedBatch mixed = peft.mixedBatch()) {
 *     logits = model.forward(input);                          // every adapter now, gated per row
 *     feed.put(mixed.placeholderName(), mixed.rows("sotu", "__base__", "moby", "sotu"));
 * }
 * }</pre>
 *
 * <p>Rows naming {@link #BASE} get the base model. LoRA and bottleneck adapters can be mixed; prompt
 * and prefix tuning change sequence lengths and cannot. A row's result equals running it alone with its
 * adapter on. The placeholder is {@code INT32 [batch]}.
 */
public final class MixedBatch implements AutoCloseable {

    /** The adapter name that selects the base model for a row, as in PEFT. */
    public static final String BASE = "__base__";

    private final String placeholder;
    private final Function<String, Integer> adapterIds;
    private final Runnable end;
    private boolean open = true;

    MixedBatch(String placeholder, Function<String, Integer> adapterIds, Runnable end) {
        this.placeholder = placeholder;
        this.adapterIds = adapterIds;
        this.end = end;
    }

    /** The name of the graph's adapter-per-row input. */
    public String placeholderName() {
        return placeholder;
    }

    /** The adapter-per-row input for a batch whose row {@code i} uses adapter {@code adapterPerRow[i]}. */
    public INDArray rows(String... adapterPerRow) {
        return rows(List.of(adapterPerRow));
    }

    /** As {@link #rows(String...)}. */
    public INDArray rows(List<String> adapterPerRow) {
        int[] ids = new int[adapterPerRow.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = adapterIds.apply(adapterPerRow.get(i));
        }
        return Nd4j.createFromArray(ids);
    }

    /** The feed entry for {@code adapterPerRow}: placeholder name to {@link #rows}. */
    public Map<String, INDArray> feed(String... adapterPerRow) {
        return Map.of(placeholder, rows(adapterPerRow));
    }

    /** Ends graph building in mixed mode; graphs built meanwhile keep working with {@link #rows}. */
    @Override
    public void close() {
        if (open) {
            open = false;
            end.run();
        }
    }
}
