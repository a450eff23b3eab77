package io.peft4j.runtime.bottleneck;

import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.RowProduct;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.GraphScalar;
import java.util.Arrays;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELU;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Swish;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * One adapter's bottleneck module after one layer: {@code h + g · up(act(down(h)))}, with the gate
 * {@code g} a graph constant (1 while the adapter is on, 0 while off).
 *
 * <p>{@code down [d, b]} ~ N(0, 0.02²) and its bias {@code [b]} = 0; {@code up [b, d]} and its bias
 * {@code [d]} = 0, so the module is the identity until trained. The variables
 * ({@code <path>.adapters.<adapter>.adapter_down.weight}, {@code .adapter_down.bias},
 * {@code .adapter_up.weight}, {@code .adapter_up.bias}) are created in the layer output's SameDiff at
 * the first forward call, when the output's width {@code d} is known (an eager call creates them in
 * the graph of the layer's own variables).
 */
final class BottleneckModule {

    private static final double DOWN_INIT_STD = 0.02;

    private final BottleneckSite site;
    private final String adapterName;
    private final int adapterId;
    private final BottleneckSettings settings;
    private final Random random;
    private final AttachContext context;
    private SameDiff sameDiff;
    private SDVariable down;
    private SDVariable downBias;
    private SDVariable up;
    private SDVariable upBias;
    private GraphScalar gate;
    private GraphScalar rowGate;
    private long hidden;
    private int graphUses;
    private boolean active;
    private boolean removed;

    BottleneckModule(BottleneckSite site, AttachContext context, BottleneckSettings settings) {
        this.site = site;
        this.adapterName = context.adapterName();
        this.adapterId = context.adapterId();
        this.settings = settings;
        this.random = context.random();
        this.context = context;
    }

    /** The module's contribution {@code g · up(act(down(h)))} for {@code h [..., d]}; counts a use. */
    SDVariable graphDelta(SDVariable h, long width, boolean mixedBatch) {
        ensureCreated(h.getSameDiff(), width, h.dataType());
        if (h.getSameDiff() != sameDiff) {
            throw new PeftException("The bottleneck adapter '" + adapterName + "' of layer '" + site.path()
                    + "' was created in another graph; build every graph of the model in its own SameDiff");
        }
        graphUses++;
        SDVariable rows = h.reshape(-1, hidden);
        SDVariable bottleneck = activate(rows.mmul(down).add(downBias));
        SDVariable delta = bottleneck.mmul(up).add(upBias).reshape(h.shape());
        return delta.mul((mixedBatch ? rowGate : gate).variable());
    }

    /**
     * The module's contribution {@code up(act(down(h)))} for {@code h [..., d]} with its parameters'
     * current values, or {@code null} while the adapter is off.
     */
    INDArray eagerDelta(INDArray h) {
        if (!active || removed) {
            return null;
        }
        long width = h.size(h.rank() - 1);
        ensureCreated(site.graph(), width, h.dataType());
        if (h.length() == width) {
            // One row (a decoding step): matrix-vector products, reused in an EagerSession.
            INDArray bottleneck = activateInPlace(RowProduct.timesPlus(this, "h down", h, down.getArr(), downBias.getArr()));
            return EagerSession.reshape(RowProduct.timesPlus(this, "h down up", bottleneck, up.getArr(), upBias.getArr()), h.shape());
        }
        INDArray rows = h.reshape(-1, width);
        INDArray bottleneck = activateInPlace(rows.mmul(down.getArr()).addiRowVector(downBias.getArr()));
        return bottleneck.mmul(up.getArr()).addiRowVector(upBias.getArr()).reshape(h.shape());
    }

    /**
     * Creates the variables for outputs of width {@code width} in {@code graph} unless they exist (a
     * forward call or a load did it); returns the bottleneck size.
     */
    int ensureCreated(SameDiff graph, long width, DataType dtype) {
        if (down == null) {
            create(graph, width, dtype);
        } else if (width != hidden) {
            throw new PeftException("The bottleneck adapter '" + adapterName + "' of layer '" + site.path() + "' was created for outputs of width "
                    + hidden + ", and this output has width " + width);
        }
        return (int) down.getArr().size(1);
    }

    private void create(SameDiff graph, long width, DataType dtype) {
        // An eager call may arrive inside a workspace (a decoder's per-step memory); the parameters must outlive it.
        try (MemoryWorkspace outside = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
            createVariables(graph, width, dtype);
        }
        refresh();
    }

    private void createVariables(SameDiff graph, long width, DataType dtype) {
        DataType type = dtype.isFPType() ? dtype : DataType.FLOAT;
        int b = settings.bottleneck(width);
        String prefix = site.path() + ".adapters." + adapterName + ".";
        this.sameDiff = graph;
        this.hidden = width;
        this.down = graph.var(context.variableName(graph, prefix + "adapter_down.weight"),
                Nd4j.randn(random, new long[] {width, b}).castTo(type).muli(DOWN_INIT_STD));
        this.downBias = graph.var(context.variableName(graph, prefix + "adapter_down.bias"), Nd4j.zeros(type, b));
        this.up = graph.var(context.variableName(graph, prefix + "adapter_up.weight"), Nd4j.zeros(type, b, width));
        this.upBias = graph.var(context.variableName(graph, prefix + "adapter_up.bias"), Nd4j.zeros(type, width));
        this.gate = new GraphScalar(graph, context.variableName(graph, prefix + "gate"), type, 0);
        this.rowGate = new GraphScalar(graph, context.variableName(graph, prefix + "row_gate"), type, 0);
    }

    private SDVariable activate(SDVariable x) {
        SameDiff graph = x.getSameDiff();
        return switch (settings.activation()) {
            case "relu" -> graph.nn.relu(x, 0.0);
            case "gelu" -> graph.nn.gelu(x);
            case "swish", "silu" -> graph.nn.swish(x);
            case "tanh" -> graph.math.tanh(x);
            default -> throw new IllegalStateException("BottleneckSettings admits no activation " + settings.activation());
        };
    }

    /** The same ops as {@link #activate}, on an array. */
    private INDArray activateInPlace(INDArray x) {
        return switch (settings.activation()) {
            case "relu" -> Transforms.relu(x, false);
            case "gelu" -> Nd4j.exec(new GELU(x, x));
            case "swish", "silu" -> Nd4j.exec(new Swish(x, x));
            case "tanh" -> Transforms.tanh(x, false);
            default -> throw new IllegalStateException("BottleneckSettings admits no activation " + settings.activation());
        };
    }

    private void refresh() {
        if (gate != null) {
            gate.set(active && !removed ? 1 : 0);
            rowGate.set(removed ? 0 : 1);
        }
    }

    void setActive(boolean active) {
        this.active = active;
        refresh();
    }

    void setRemoved() {
        this.removed = true;
        refresh();
    }

    BottleneckSite site() {
        return site;
    }

    String adapterName() {
        return adapterName;
    }

    int adapterId() {
        return adapterId;
    }

    BottleneckSettings settings() {
        return settings;
    }

    /** The output width d, or 0 before the first forward call. */
    long hidden() {
        return hidden;
    }

    int graphUses() {
        return graphUses;
    }

    /** The variable names (empty before the first forward call). */
    List<String> variableNames() {
        return down == null ? List.of() : List.of(down.name(), downBias.name(), up.name(), upBias.name());
    }

    /** The live parameters {@code down [d, b]}, {@code down bias [b]}, {@code up [b, d]}, {@code up bias [d]} (empty before creation). */
    List<INDArray> parameters() {
        return down == null ? List.of() : List.of(down.getArr(), downBias.getArr(), up.getArr(), upBias.getArr());
    }

    BottleneckLayer view() {
        return new BottleneckLayer(site.path(), hidden, hidden == 0 ? 0 : settings.bottleneck(hidden), settings.activation());
    }

    long parameterCount() {
        return down == null ? 0 : view().parameterCount();
    }

    @Override
    public String toString() {
        return "bottleneck adapter '" + adapterName + "' on '" + site.path() + "' " + Arrays.toString(new long[] {hidden});
    }
}
