package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import java.util.Arrays;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A bottleneck adapter after one layer: {@code h + up(act(down(h)))}.
 *
 * <p>{@code down [d, b]} ~ N(0, 0.02²) and its bias {@code [b]} = 0; {@code up [b, d]} and its bias
 * {@code [d]} = 0, so the adapter is the identity until trained. The variables
 * ({@code <path>.adapter_down.weight}, {@code .adapter_down.bias}, {@code .adapter_up.weight},
 * {@code .adapter_up.bias}) are created in the layer output's SameDiff at the first forward call
 * after attaching, when the output's width {@code d} is known. Graph mode only.
 */
public final class BottleneckAdapter implements ForwardExtension {

    private static final double DOWN_INIT_STD = 0.02;

    private final String path;
    private final Object layer;
    private final AdapterSettings settings;
    private final Random random;
    private SameDiff sameDiff;
    private SDVariable down;
    private SDVariable downBias;
    private SDVariable up;
    private SDVariable upBias;
    private long hidden;
    private int graphUses;

    public BottleneckAdapter(String path, Object layer, AdapterSettings settings, Random random) {
        ForwardDispatcher.requireNone(layer, BottleneckAdapter.class, path);
        this.path = path;
        this.layer = layer;
        this.settings = settings;
        this.random = random;
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (!(output instanceof SDVariable h)) {
            throw new PeftException("Layer '" + path + "' returned " + (output == null ? "null" : output.getClass().getSimpleName())
                    + "; bottleneck adapters are added to SameDiff graphs, so its forward method must return an SDVariable");
        }
        long width = lastDimension(h);
        if (down == null) {
            create(h.getSameDiff(), width, h.dataType());
        } else if (h.getSameDiff() != sameDiff || width != hidden) {
            throw new PeftException("Adapter of layer '" + path + "' was created for outputs of width " + hidden
                    + " in another graph; this call's output has shape " + Arrays.toString(h.getShape()));
        }
        graphUses++;
        SDVariable rows = h.reshape(-1, hidden);
        SDVariable bottleneck = activate(rows.mmul(down).add(downBias));
        return h.add(bottleneck.mmul(up).add(upBias).reshape(h.shape()));
    }

    private long lastDimension(SDVariable h) {
        return OutputWidth.of(h).orElseThrow(() -> new PeftException("Cannot size the adapter of layer '" + path
                + "': the width of its output cannot be read off the graph (it is not a matrix product with a weight, or "
                + "element-wise ops on one); end the layer's forward method with such an op, or give its output a static shape"));
    }

    /**
     * Creates the variables for outputs of width {@code width} in {@code graph} if no forward call has
     * yet (for loading a saved adapter before the graph is built); returns the bottleneck size.
     */
    public int ensureCreated(SameDiff graph, long width, DataType dtype) {
        if (down == null) {
            create(graph, width, dtype);
        } else if (width != hidden) {
            throw new PeftException("Adapter of layer '" + path + "' has width " + hidden + ", not " + width);
        }
        return (int) down.getArr().size(1);
    }

    private void create(SameDiff graph, long width, DataType dtype) {
        DataType type = dtype.isFPType() ? dtype : DataType.FLOAT;
        int b = settings.bottleneck(width);
        this.sameDiff = graph;
        this.hidden = width;
        this.down = graph.var(path + ".adapter_down.weight", Nd4j.randn(random, new long[] {width, b}).castTo(type).muli(DOWN_INIT_STD));
        this.downBias = graph.var(path + ".adapter_down.bias", Nd4j.zeros(type, b));
        this.up = graph.var(path + ".adapter_up.weight", Nd4j.zeros(type, b, width));
        this.upBias = graph.var(path + ".adapter_up.bias", Nd4j.zeros(type, width));
    }

    private SDVariable activate(SDVariable x) {
        SameDiff graph = x.getSameDiff();
        return switch (settings.activation()) {
            case "relu" -> graph.nn.relu(x, 0.0);
            case "gelu" -> graph.nn.gelu(x);
            case "swish", "silu" -> graph.nn.swish(x);
            case "tanh" -> graph.math.tanh(x);
            default -> throw new IllegalStateException("AdapterSettings admits no activation " + settings.activation());
        };
    }

    public String path() {
        return path;
    }

    public AdapterSettings settings() {
        return settings;
    }

    /** The output width d, or 0 before the first forward call. */
    public long hidden() {
        return hidden;
    }

    public int graphUses() {
        return graphUses;
    }

    public SameDiff sameDiff() {
        return sameDiff;
    }

    /** The variable names (empty before the first forward call). */
    public List<String> variableNames() {
        return down == null ? List.of() : List.of(down.name(), downBias.name(), up.name(), upBias.name());
    }

    /** The live parameters by name, in the order of {@link #variableNames()}. */
    public List<INDArray> parameters() {
        return down == null ? List.of() : List.of(down.getArr(), downBias.getArr(), up.getArr(), upBias.getArr());
    }

    public void register() {
        ForwardDispatcher.register(layer, this, path);
    }

    public void unregister() {
        ForwardDispatcher.unregister(layer, this);
    }
}
