package io.peft4j.runtime.internal;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Listener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.autodiff.samediff.internal.Variable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.Op;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.impl.controlflow.compat.BaseCompatOp;
import org.nd4j.linalg.api.ops.impl.shape.ExpandDims;
import org.nd4j.linalg.api.ops.impl.shape.OnesLike;
import org.nd4j.linalg.api.ops.impl.shape.Rank;
import org.nd4j.linalg.api.ops.impl.shape.Reshape;
import org.nd4j.linalg.api.ops.impl.shape.Shape;
import org.nd4j.linalg.api.ops.impl.shape.Size;
import org.nd4j.linalg.api.ops.impl.shape.SizeAt;
import org.nd4j.linalg.api.ops.impl.shape.Squeeze;
import org.nd4j.linalg.api.ops.impl.shape.ZerosLike;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;

/**
 * One training step of a SameDiff gradient function, recorded op by op while SameDiff ran it, and
 * run again as a fixed list of op calls into buffers allocated once.
 *
 * <p>SameDiff's executor works out, for every op of every step, which ops are ready, fetches and
 * releases arrays through its memory manager and builds a native op context; on the sample
 * transformer's LoRA step that is 50–140 ms of Java and allocation between 700 ops that compute
 * for about 170 ms (BENCHMARKS.md). While the placeholders keep their shapes, the ops, their order,
 * their arguments and every array's shape are the same from step to step, so the second step can
 * be replayed: one native context per op, built once, reading the parameters' own arrays and
 * writing into buffers that are reused as soon as their last reader has run (the lifetimes of the
 * recorded order). Reshapes, squeezes and dimension expansions of such a buffer become views of it,
 * made once, instead of copies at every step, and values that only the placeholders' shapes
 * determine ({@code shape_of}, {@code ones_as} and the integer arithmetic on shapes) are computed once,
 * when the step is built. Elementwise ops, softmax and the transcendental
 * functions run in peft4j's own kernels where {@link ReplayKernels} has them, and BERT's written-out
 * exact GELU and its gradient as one pass each ({@link ExactGelu}). Parameters are updated where SameDiff updates them: right after the op that
 * computes their gradient, with the same regularisation, updater and listener calls (Adam's update in
 * one kernel pass, {@link AdamSteps}, with libnd4j's bits), so a replayed step computes what
 * SameDiff's would, op for op.
 *
 * <p>{@link #build} refuses (returns {@code null}) what it cannot replay faithfully: control flow,
 * random ops (each step must draw anew), values that did not come from a recorded op, a placeholder,
 * a parameter or a constant, and outputs that are views or empty. {@link #accepts} refuses a batch
 * whose placeholders differ in shape or type (the last, shorter batch of an epoch) and a step after
 * anything replaced a parameter's array; SameDiff runs those.
 */
public final class RecordedStep {
    private static final Set<Class<?>> SHAPE_QUERIES = Set.of(Shape.class, Size.class, SizeAt.class, Rank.class, OnesLike.class,
            ZerosLike.class);
    private final SameDiff gradients;
    private final List<Call> calls;
    private final Map<String, INDArray> placeholderBuffers;
    private final Map<String, INDArray> parameters;
    private final Map<String, String> variableOfGradient;
    private final Map<String, Integer> lossIndex;
    private final List<String> lossVariables;
    private final Map<String, INDArray> kept;
    private final AdamSteps adamSteps;

    /**
     * What SameDiff ran for one op, and, once built, the context that runs it again; {@code kernel},
     * when not null, computes it instead of libnd4j ({@link ReplayKernels}).
     */
    /**
     * @param updatesLater whether the updates its gradients trigger wait for a later call: a fused
     *                     group's member whose group computes them at its anchor ({@link ProductSum})
     * @param updatesHere  the calls whose gradients' updates run after this one, a group's anchor
     */
    private record Call(SameDiffOp op, OpContext context, INDArray[] outputs, Role role, Runnable kernel, boolean updatesLater,
                        List<Call> updatesHere) {
        boolean runs() {
            return role == Role.RUN || role == Role.RUN_FUSED;
        }
    }

    /** What a replay does with a recorded call. */
    private enum Role {
        /** Runs it, in libnd4j or in {@code kernel}. */
        RUN,
        /** Nothing: its outputs are views of another value's buffer, made once. */
        VIEW,
        /** Nothing: only the placeholders' shapes determine its outputs, computed once when built. */
        COMPUTED_ONCE,
        /** Nothing: a fused kernel computes what it did, at another call of its group ({@link FusedGroup}). */
        FUSED_INTO_ANCHOR,
        /** Runs its group's fused kernel. */
        RUN_FUSED
    }

    /** What SameDiff ran for one op, as {@link Recorder} saw it. */
    private record Recorded(SameDiffOp op, List<INDArray> inputs, INDArray[] outputs, long[] iArgs, double[] tArgs,
                            boolean[] bArgs, DataType[] dArgs) {
    }

    /** Listens to one SameDiff training step or inference and keeps every op call with its arrays and arguments. */
    public static final class Recorder extends BaseListener {
        private final List<Recorded> calls = new ArrayList<>();
        private final Operation operation;

        public Recorder(Operation operation) {
            this.operation = operation;
        }

        @Override
        public boolean isActive(Operation operation) {
            return operation == this.operation;
        }

        @Override
        public void opExecution(SameDiff sd, At at, MultiDataSet batch, SameDiffOp op, OpContext context, INDArray[] outputs) {
            // the context is emptied for reuse after this call: copy what it holds now
            boolean[] bArgs = new boolean[context.getBArguments().size()];
            for (int i = 0; i < bArgs.length; i++) {
                bArgs[i] = context.getBArguments().get(i);
            }
            calls.add(new Recorded(op, new ArrayList<>(context.getInputArrays()), outputs.clone(),
                    context.getIArguments().stream().mapToLong(Long::longValue).toArray(),
                    context.getTArguments().stream().mapToDouble(Double::doubleValue).toArray(), bArgs,
                    context.getDArguments().toArray(DataType[]::new)));
        }
    }

    private RecordedStep(SameDiff gradients, List<Call> calls, Map<String, INDArray> placeholderBuffers, Map<String, INDArray> parameters,
                         Map<String, String> variableOfGradient, List<String> lossVariables, Map<String, INDArray> kept,
                         AdamSteps adamSteps) {
        this.gradients = gradients;
        this.kept = kept;
        this.adamSteps = adamSteps;
        this.calls = calls;
        this.placeholderBuffers = placeholderBuffers;
        this.parameters = parameters;
        this.variableOfGradient = variableOfGradient;
        this.lossVariables = lossVariables;
        this.lossIndex = new HashMap<>();
        for (int i = 0; i < lossVariables.size(); i++) {
            lossIndex.put(lossVariables.get(i), i);
        }
    }

    /**
     * The replayable form of the step {@code recorder} saw SameDiff run on {@code gradients} (the
     * gradient function) for {@code placeholders}, updating the trainable variables named by
     * {@code variableOfGradient}'s values; {@code null} when the step cannot be replayed faithfully.
     */
    static RecordedStep build(SameDiff gradients, Recorder recorder, Map<String, INDArray> placeholders,
                              Map<String, String> variableOfGradient, List<String> lossVariables) {
        return build(gradients, recorder, placeholders, variableOfGradient, lossVariables, List.of());
    }

    /**
     * As above, keeping the values named {@code kept} in buffers of their own until the end, for
     * {@link #output}: an inference's requested outputs.
     */
    public static RecordedStep build(SameDiff gradients, Recorder recorder, Map<String, INDArray> placeholders,
                                     Map<String, String> variableOfGradient, List<String> lossVariables, List<String> kept) {
        List<Recorded> recorded = recorder.calls;
        Map<String, INDArray> placeholderBuffers = new LinkedHashMap<>();
        Map<String, INDArray> parameters = new LinkedHashMap<>();
        Map<String, Integer> slotOfValue = new HashMap<>();
        List<INDArray> slotArrays = new ArrayList<>();
        List<Integer> lastUse = new ArrayList<>();
        List<int[]> inputSlots = new ArrayList<>();
        List<INDArray[]> externalInputs = new ArrayList<>();
        List<boolean[]> integerConstantInputs = new ArrayList<>();
        for (int i = 0; i < recorded.size(); i++) {
            Recorded call = recorded.get(i);
            List<String> names = call.op().getInputsToOp() == null ? List.of() : call.op().getInputsToOp();
            if (!replayable(call) || names.size() != call.inputs().size()) {
                return null;
            }
            int[] slots = new int[names.size()];
            INDArray[] external = new INDArray[names.size()];
            boolean[] integerConstant = new boolean[names.size()];
            for (int k = 0; k < names.size(); k++) {
                String name = names.get(k);
                INDArray array = call.inputs().get(k);
                SDVariable variable = gradients.hasVariable(name) ? gradients.getVariable(name) : null;
                VariableType kind = variable == null ? null : variable.getVariableType();
                slots[k] = -1;
                if (kind == VariableType.ARRAY) {
                    Integer slot = slotOfValue.get(name);
                    if (slot == null || slotArrays.get(slot) != array) {
                        return null;
                    }
                    slots[k] = slot;
                    lastUse.set(slot, i);
                } else if (kind == VariableType.PLACEHOLDER) {
                    INDArray fed = placeholders.get(name);
                    if (fed == null || fed.dataType() != array.dataType() || !Arrays.equals(fed.shape(), array.shape())) {
                        return null;
                    }
                    external[k] = placeholderBuffers.computeIfAbsent(name, unused -> array.dup(array.ordering()));
                } else if (kind == VariableType.VARIABLE || kind == VariableType.CONSTANT) {
                    if (gradients.getArrForVarName(name) != array) {
                        return null;
                    }
                    parameters.put(name, array);
                    external[k] = array;
                    integerConstant[k] = kind == VariableType.CONSTANT && array.dataType().isIntType();
                } else {
                    return null;
                }
            }
            for (int j = 0; j < call.outputs().length; j++) {
                slotOfValue.put(call.op().getOutputsOfOp().get(j), slotArrays.size());
                slotArrays.add(call.outputs()[j]);
                lastUse.add(i);
            }
            inputSlots.add(slots);
            externalInputs.add(external);
            integerConstantInputs.add(integerConstant);
        }
        for (String name : kept) {
            Integer slot = slotOfValue.get(name);
            if (slot == null) {
                return null;
            }
            lastUse.set(slot, recorded.size() - 1);
        }
        boolean[] folded = foldedCalls(recorded, inputSlots, integerConstantInputs, slotArrays.size(), variableOfGradient.keySet());
        // computed once and read at every step: a buffer of its own, for the whole step
        boolean[] ownBuffer = new boolean[slotArrays.size()];
        int firstSlot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            for (int j = 0; j < recorded.get(i).outputs().length; j++) {
                if (folded[i]) {
                    ownBuffer[firstSlot + j] = true;
                    lastUse.set(firstSlot + j, recorded.size() - 1);
                }
            }
            firstSlot += recorded.get(i).outputs().length;
        }
        ReplayKernels kernels = ReplayKernels.forThisProcess();
        boolean fuse = kernels != ReplayKernels.NONE && !"false".equalsIgnoreCase(System.getProperty(ReplayKernels.FUSION_PROPERTY));
        List<FusedGroup> fusions = new ArrayList<>();
        if (fuse) {
            RecordedCalls recordedCalls = new RecordedCalls(recorded, inputSlots, slotArrays.size(), slotOfValue, kept, lossVariables,
                    variableOfGradient);
            fusions.addAll(ExactGelu.find(recordedCalls));
            fusions.addAll(WrittenOutLayerNorm.find(recordedCalls));
            fusions.addAll(ScaledDotProductAttention.find(recordedCalls));
            fusions.addAll(AttentionGradient.find(recordedCalls));
            fusions.addAll(ProductSum.find(recordedCalls));
        }
        for (FusedGroup fusion : fusions) {
            for (int input : fusion.inputs()) {
                lastUse.set(input, Math.max(lastUse.get(input), fusion.anchor())); // read when the group's last call runs
            }
        }
        int[] rootOf = aliases(recorded, inputSlots, slotArrays, slotOfValue, variableOfGradient);
        for (int s = 0; s < rootOf.length; s++) {
            lastUse.set(rootOf[s], Math.max(lastUse.get(rootOf[s]), lastUse.get(s)));
        }
        int[] firstWrite = firstWrites(recorded, fusions, rootOf);
        INDArray[] buffers = assignBuffers(recorded, slotArrays, lastUse, rootOf, ownBuffer, firstWrite);
        Map<String, INDArray> keptBuffers = new LinkedHashMap<>();
        kept.forEach(name -> keptBuffers.put(name, buffers[slotOfValue.get(name)]));
        Map<Integer, Runnable> fusedKernels = new HashMap<>();
        Set<Integer> fusedMembers = new HashSet<>();
        FusedGroup.StepArrays stepArrays = new FusedGroup.StepArrays() {
            @Override
            public INDArray slot(int slot) {
                return buffers[slot];
            }

            @Override
            public INDArray input(int call, int k) {
                int input = inputSlots.get(call)[k];
                return input >= 0 ? buffers[input] : externalInputs.get(call)[k];
            }
        };
        // a parameter is updated right after the call that computes its gradient: for a member before its
        // anchor, after the anchor, which computes the gradient (and may read the parameter first)
        Map<Integer, Integer> updatedAtAnchor = new HashMap<>();
        for (FusedGroup fusion : fusions) {
            Runnable kernel = fusion.kernel(kernels, stepArrays);
            if (kernel != null) {
                fusedKernels.put(fusion.anchor(), kernel);
                fusedMembers.addAll(fusion.members());
                fusedMembers.remove(fusion.anchor());
                fusion.members().stream().filter(member -> member < fusion.anchor()).forEach(member -> updatedAtAnchor.put(member, fusion.anchor()));
            }
        }
        List<Call> calls = new ArrayList<>();
        int slot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            Recorded call = recorded.get(i);
            List<INDArray> inputs = new ArrayList<>();
            for (int k = 0; k < inputSlots.get(i).length; k++) {
                int input = inputSlots.get(i)[k];
                inputs.add(input >= 0 ? buffers[input] : externalInputs.get(i)[k]);
            }
            INDArray[] outputs = Arrays.copyOfRange(buffers, slot, slot + call.outputs().length);
            // a view of the root's buffer needs no op; reshape() may have had to copy, and then the op runs
            boolean aliased = rootOf[slot] != slot && sharesMemory(buffers[slot], buffers[rootOf[slot]]);
            slot += call.outputs().length;
            Role role = aliased ? Role.VIEW : folded[i] ? Role.COMPUTED_ONCE : fusedKernels.containsKey(i) ? Role.RUN_FUSED
                    : fusedMembers.contains(i) ? Role.FUSED_INTO_ANCHOR : Role.RUN;
            Runnable kernel = role == Role.RUN_FUSED ? fusedKernels.get(i)
                    : role != Role.RUN || Arrays.stream(call.dArgs()).anyMatch(type -> type != DataType.FLOAT)
                    ? null : kernels.kernelFor(call.op().getOp(), inputs, outputs, call.iArgs(), call.tArgs(), call.bArgs());
            calls.add(new Call(call.op(), context(call, inputs, outputs), outputs, role, kernel, updatedAtAnchor.containsKey(i),
                    new ArrayList<>()));
        }
        updatedAtAnchor.forEach((member, anchor) -> calls.get(anchor).updatesHere().add(calls.get(member)));
        for (Call call : calls) {
            if (call.role() == Role.COMPUTED_ONCE) {
                execute(call);
            }
        }
        return new RecordedStep(gradients, calls, placeholderBuffers, parameters, variableOfGradient, lossVariables, keptBuffers,
                AdamSteps.with(kernels));
    }

    /**
     * False when {@code gradients} has an op that no recording can replay: control flow, a legacy random
     * op, or a random custom op while {@code seeded} is false (with a {@link RandomOpSeeder} among the
     * listeners, each replay of such an op is seeded as SameDiff's execution would be).
     */
    public static boolean replayable(SameDiff gradients, boolean seeded) {
        return gradients.getOps().values().stream().allMatch(op -> replayable(op.getOp(), seeded));
    }

    private static boolean replayable(DifferentialFunction function, boolean seeded) {
        boolean random = RandomOpSeeder.isRandom(function) && !(seeded && RandomOpSeeder.drawsFromContext(function));
        return !(function instanceof BaseCompatOp) && !random && (function instanceof CustomOp || function instanceof Op);
    }

    /** Ops that compute the same thing from the same inputs (and seed) every time, into fresh, non-empty outputs. */
    private static boolean replayable(Recorded call) {
        if (!replayable(call.op().getOp(), true)) {
            return false;
        }
        for (INDArray output : call.outputs()) {
            if (output == null || output.isView() || output.isEmpty()) {
                return false;
            }
        }
        return call.op().getOutputsOfOp() != null && call.op().getOutputsOfOp().size() == call.outputs().length;
    }

    /** The recorded calls as {@link ExactGelu}, {@link WrittenOutLayerNorm} and {@link ScaledDotProductAttention} read them. */
    private record RecordedCalls(List<Recorded> recorded, List<int[]> inputSlots, List<int[]> outputSlots, List<List<Integer>> readers,
                                 Set<Integer> readAfterwards) implements FusedGroup.Calls {
        RecordedCalls(List<Recorded> recorded, List<int[]> inputSlots, int slotCount, Map<String, Integer> slotOfValue, List<String> kept,
                      List<String> lossVariables, Map<String, String> variableOfGradient) {
            this(recorded, inputSlots, outputSlots(recorded), readers(recorded, inputSlots, slotCount),
                    readAfterwards(slotOfValue, kept, lossVariables, variableOfGradient));
        }

        private static List<int[]> outputSlots(List<Recorded> recorded) {
            List<int[]> slots = new ArrayList<>();
            int next = 0;
            for (Recorded call : recorded) {
                int[] outputs = new int[call.outputs().length];
                for (int j = 0; j < outputs.length; j++) {
                    outputs[j] = next++;
                }
                slots.add(outputs);
            }
            return slots;
        }

        /** The calls that read each slot's values: a shape query ({@code ones_as} of a gradient) reads only its shape. */
        private static List<List<Integer>> readers(List<Recorded> recorded, List<int[]> inputSlots, int slotCount) {
            List<List<Integer>> readers = new ArrayList<>();
            for (int s = 0; s < slotCount; s++) {
                readers.add(new ArrayList<>());
            }
            for (int call = 0; call < inputSlots.size(); call++) {
                if (SHAPE_QUERIES.contains(recorded.get(call).op().getOp().getClass())) {
                    continue;
                }
                for (int slot : inputSlots.get(call)) {
                    if (slot >= 0 && !readers.get(slot).contains(call)) {
                        readers.get(slot).add(call);
                    }
                }
            }
            return readers;
        }

        private static Set<Integer> readAfterwards(Map<String, Integer> slotOfValue, List<String> kept, List<String> lossVariables,
                                                   Map<String, String> variableOfGradient) {
            Set<Integer> slots = new HashSet<>();
            for (String name : concat(kept, lossVariables, variableOfGradient.keySet())) {
                Integer slot = slotOfValue.get(name);
                if (slot != null) {
                    slots.add(slot);
                }
            }
            return slots;
        }

        private static List<String> concat(List<String> kept, List<String> lossVariables, Set<String> gradients) {
            List<String> names = new ArrayList<>(kept);
            names.addAll(lossVariables);
            names.addAll(gradients);
            return names;
        }

        @Override
        public int size() {
            return recorded.size();
        }

        @Override
        public DifferentialFunction op(int call) {
            return recorded.get(call).op().getOp();
        }

        @Override
        public int[] inputs(int call) {
            return inputSlots.get(call);
        }

        @Override
        public INDArray recordedInput(int call, int k) {
            return recorded.get(call).inputs().get(k);
        }

        @Override
        public int[] outputs(int call) {
            return outputSlots.get(call);
        }

        @Override
        public long[] integerArguments(int call) {
            return recorded.get(call).iArgs();
        }

        @Override
        public double[] floatArguments(int call) {
            return recorded.get(call).tArgs();
        }

        @Override
        public List<Integer> readers(int slot) {
            return readers.get(slot);
        }

        @Override
        public boolean readAfterwards(int slot) {
            return readAfterwards.contains(slot);
        }
    }

    /**
     * Which calls compute, at every step, what they computed at the first: with the placeholders'
     * shapes fixed ({@link #accepts}), a shape query ({@code shape_of}, {@code size}, {@code rank},
     * {@code ones_as}, {@code zeros_as}) gives the same value every time, and so does a deterministic op
     * whose inputs are such values or integer constants ({@code strided_slice} and {@code concat} of
     * shapes, the sizes a {@code reshape} is given). A transformer layer asks for a dozen of them, each a
     * libnd4j call of 10–140 µs (BENCHMARKS.md). Random ops and trainable variables' gradients (which the
     * updater changes in place) are never folded; float constants are not treated as fixed (a merge may
     * write into frozen weights in place).
     */
    private static boolean[] foldedCalls(List<Recorded> recorded, List<int[]> inputSlots, List<boolean[]> integerConstantInputs, int slotCount,
                                         Set<String> gradientNames) {
        boolean[] folded = new boolean[recorded.size()];
        boolean[] fixedSlot = new boolean[slotCount];
        int slot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            Recorded call = recorded.get(i);
            DifferentialFunction function = call.op().getOp();
            boolean fixed = !RandomOpSeeder.isRandom(function) && call.outputs().length > 0
                    && call.op().getOutputsOfOp().stream().noneMatch(gradientNames::contains);
            if (fixed && !SHAPE_QUERIES.contains(function.getClass())) {
                int[] slots = inputSlots.get(i);
                for (int k = 0; k < slots.length && fixed; k++) {
                    fixed = slots[k] >= 0 ? fixedSlot[slots[k]] : integerConstantInputs.get(i)[k];
                }
            }
            folded[i] = fixed;
            for (int j = 0; j < call.outputs().length; j++) {
                fixedSlot[slot + j] = fixed;
            }
            slot += call.outputs().length;
        }
        return folded;
    }

    /**
     * For each value slot, the slot whose buffer it shares: itself, or, for the output of a reshape,
     * squeeze or dimension expansion of a fresh C-order value, that value's root. libnd4j copies into
     * the output array such an op is given (a transformer step runs over a hundred of them); over a
     * buffer allocated once in C order the same result is a view, made once when the step is built.
     * Values that an updater changes in place (the trainable variables' gradients) neither alias nor
     * are aliased: a later reader of the other name would see the change.
     */
    private static int[] aliases(List<Recorded> recorded, List<int[]> inputSlots, List<INDArray> slotArrays, Map<String, Integer> slotOfValue,
                                 Map<String, String> variableOfGradient) {
        int[] rootOf = new int[slotArrays.size()];
        for (int s = 0; s < rootOf.length; s++) {
            rootOf[s] = s;
        }
        Set<Integer> updated = new HashSet<>();
        variableOfGradient.keySet().forEach(gradient -> {
            Integer slot = slotOfValue.get(gradient);
            if (slot != null) {
                updated.add(slot);
            }
        });
        int slot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            Recorded call = recorded.get(i);
            int first = slot;
            slot += call.outputs().length;
            if (call.outputs().length != 1 || inputSlots.get(i).length == 0 || inputSlots.get(i)[0] < 0 || !isViewOp(call)) {
                continue;
            }
            int root = rootOf[inputSlots.get(i)[0]];
            INDArray input = slotArrays.get(root);
            INDArray output = call.outputs()[0];
            if (updated.contains(root) || updated.contains(first) || input.ordering() != 'c' || output.ordering() != 'c'
                    || input.length() != output.length() || input.length() == 0 || input.dataType() != output.dataType()) {
                continue;
            }
            rootOf[first] = root;
            updated.remove(first);
        }
        return rootOf;
    }

    private static boolean sharesMemory(INDArray view, INDArray root) {
        return view.data().address() == root.data().address() && view.offset() == 0 && root.offset() == 0;
    }

    /** A reshape in C order, a squeeze or an expansion: ops whose output is their first input's buffer read in C order. */
    private static boolean isViewOp(Recorded call) {
        DifferentialFunction function = call.op().getOp();
        if (function instanceof Reshape) {
            return call.iArgs().length == 0 || call.iArgs()[0] == -'c';
        }
        return function instanceof Squeeze || function instanceof ExpandDims;
    }

    /**
     * One buffer per value, shared by values whose lifetimes do not overlap in the recorded order: a
     * buffer returns to the pool after its value's last reader, so no op writes over its own inputs. A
     * value aliased to another ({@code rootOf}) is a C-order view of that value's buffer, which stays
     * out of the pool until the last reader of any of its aliases ({@code lastUse} already says so).
     * A value computed once ({@code ownBuffer}) takes no buffer from the pool: one that an earlier value
     * had would be written over by that value's op at every step.
     */
    /**
     * The call at which each slot is first written: the call that computes it, or the earlier anchor
     * of a fused group that writes it ({@link FusedGroup#writtenAtAnchor()}).
     */
    private static int[] firstWrites(List<Recorded> recorded, List<FusedGroup> fusions, int[] rootOf) {
        int[] firstWrite = new int[rootOf.length];
        int slot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            for (int j = 0; j < recorded.get(i).outputs().length; j++) {
                firstWrite[slot++] = i;
            }
        }
        for (FusedGroup fusion : fusions) {
            for (int written : fusion.writtenAtAnchor()) {
                firstWrite[rootOf[written]] = Math.min(firstWrite[rootOf[written]], fusion.anchor());
            }
        }
        return firstWrite;
    }

    private static INDArray[] assignBuffers(List<Recorded> recorded, List<INDArray> slotArrays, List<Integer> lastUse, int[] rootOf,
                                            boolean[] ownBuffer, int[] firstWrite) {
        INDArray[] buffers = new INDArray[slotArrays.size()];
        Map<String, Deque<INDArray>> pool = new HashMap<>();
        List<List<Integer>> endingAt = new ArrayList<>();
        List<List<Integer>> startingAt = new ArrayList<>();
        for (int i = 0; i < recorded.size(); i++) {
            endingAt.add(new ArrayList<>());
            startingAt.add(new ArrayList<>());
        }
        for (int s = 0; s < lastUse.size(); s++) {
            if (rootOf[s] == s) {
                endingAt.get(lastUse.get(s)).add(s);
                startingAt.get(firstWrite[s]).add(s);
            }
        }
        int slot = 0;
        for (int i = 0; i < recorded.size(); i++) {
            for (int root : startingAt.get(i)) {
                INDArray like = slotArrays.get(root);
                Deque<INDArray> free = ownBuffer[root] ? null : pool.get(key(like));
                buffers[root] = free != null && !free.isEmpty() ? free.pop()
                        : Nd4j.createUninitialized(like.dataType(), like.shape(), like.ordering());
            }
            for (int j = 0; j < recorded.get(i).outputs().length; j++, slot++) {
                if (rootOf[slot] != slot) {
                    buffers[slot] = buffers[rootOf[slot]].reshape('c', slotArrays.get(slot).shape());
                }
            }
            for (int ended : endingAt.get(i)) {
                pool.computeIfAbsent(key(slotArrays.get(ended)), unused -> new ArrayDeque<>()).push(buffers[ended]);
            }
        }
        return buffers;
    }

    private static String key(INDArray array) {
        return array.dataType() + "/" + array.ordering() + Arrays.toString(array.shape());
    }

    private static OpContext context(Recorded call, List<INDArray> inputs, INDArray[] outputs) {
        OpContext context = Nd4j.getExecutioner().buildContext();
        context.setInputArrays(inputs);
        context.setOutputArrays(outputs);
        if (call.iArgs().length > 0) {
            context.setIArguments(call.iArgs());
        }
        if (call.tArgs().length > 0) {
            context.setTArguments(call.tArgs());
        }
        if (call.bArgs().length > 0) {
            context.setBArguments(call.bArgs());
        }
        if (call.dArgs().length > 0) {
            context.setDArguments(call.dArgs());
        }
        return context;
    }

    /**
     * The placeholders' names, types and shapes, sorted by name: two batches with the same signature
     * can share a recording. Recording costs a step's worth of buffers, so callers record a signature
     * only when it comes again, not for shapes seen once (data padded to each batch's longest row).
     */
    public static String signature(Map<String, INDArray> placeholders) {
        StringBuilder signature = new StringBuilder();
        new java.util.TreeMap<>(placeholders).forEach((name, array) -> signature.append(name).append(':').append(array.dataType())
                .append(Arrays.toString(array.shape())).append(';'));
        return signature.toString();
    }

    /** True when {@code placeholders} have the recorded shapes and types and every parameter is still the recorded array. */
    public boolean accepts(Map<String, INDArray> placeholders) {
        for (Map.Entry<String, INDArray> buffer : placeholderBuffers.entrySet()) {
            INDArray fed = placeholders.get(buffer.getKey());
            if (fed == null || fed.dataType() != buffer.getValue().dataType() || !Arrays.equals(fed.shape(), buffer.getValue().shape())) {
                return false;
            }
        }
        for (Map.Entry<String, INDArray> parameter : parameters.entrySet()) {
            if (gradients.getArrForVarName(parameter.getKey()) != parameter.getValue()) {
                return false;
            }
        }
        return true;
    }

    /**
     * Runs the recorded inference on {@code placeholders} (which {@link #accepts} accepted) and returns
     * copies of the kept values, by name.
     */
    public Map<String, INDArray> output(Map<String, INDArray> placeholders) {
        placeholderBuffers.forEach((name, buffer) -> buffer.assign(placeholders.get(name)));
        for (Call call : calls) {
            exec(call);
        }
        Map<String, INDArray> outputs = new LinkedHashMap<>();
        kept.forEach((name, buffer) -> outputs.put(name, buffer.dup()));
        return outputs;
    }

    /** How many of the recorded calls peft4j's own kernels compute ({@link ReplayKernels}). */
    public int kernelCalls() {
        return (int) calls.stream().filter(call -> call.kernel() != null).count();
    }

    /** How many of the recorded calls compute values that only shapes determine, computed once when built. */
    public int foldedCalls() {
        return (int) calls.stream().filter(call -> call.role() == Role.COMPUTED_ONCE).count();
    }

    /** How many of the recorded calls run as parts of fused kernels ({@link ExactGelu}), the groups' last calls included. */
    public int fusedCalls() {
        return (int) calls.stream().filter(call -> call.role() == Role.FUSED_INTO_ANCHOR || call.role() == Role.RUN_FUSED).count();
    }

    /** How many op calls the recording holds. */
    public int callCount() {
        return calls.size();
    }

    private static void exec(Call call) {
        if (call.runs()) {
            execute(call);
        }
    }

    private static void execute(Call call) {
        if (call.kernel() != null) {
            call.kernel().run();
            return;
        }
        if (call.op().getOp() instanceof CustomOp custom) {
            Nd4j.getExecutioner().exec(custom, call.context());
        } else {
            Nd4j.getExecutioner().exec((Op) call.op().getOp(), call.context());
        }
    }

    /**
     * Runs the step on {@code placeholders} (which {@link #accepts} accepted), updating the parameters
     * as SameDiff's {@code TrainingSession} does and calling {@code listeners} where it would; returns
     * the loss it reports.
     */
    Loss run(Map<String, INDArray> placeholders, MultiDataSet batch, At at, TrainingConfig config, Map<String, GradientUpdater> updaters,
             List<Listener> listeners) {
        placeholderBuffers.forEach((name, buffer) -> buffer.assign(placeholders.get(name)));
        List<Listener> active = new ArrayList<>();
        for (Listener listener : listeners) {
            if (listener.isActive(at.operation())) {
                active.add(listener);
            }
        }
        double[] losses = new double[lossVariables.size()];
        Map<Class<?>, double[]> regularizationLosses = new LinkedHashMap<>();
        for (Call call : calls) {
            for (Listener listener : active) {
                listener.preOpExecution(gradients, at, call.op(), call.context());
            }
            exec(call);
            for (Listener listener : active) {
                listener.opExecution(gradients, at, batch, call.op(), call.context(), call.outputs());
            }
            List<String> names = call.op().getOutputsOfOp();
            for (int j = 0; j < names.size(); j++) {
                Integer loss = lossIndex.get(names.get(j));
                INDArray output = call.outputs()[j];
                if (loss != null) {
                    losses[loss] += output.isScalar() ? output.getDouble(0) : output.sumNumber().doubleValue();
                }
            }
            if (!call.updatesLater()) {
                updateFrom(call, at, config, updaters, active, regularizationLosses);
            }
            for (Call member : call.updatesHere()) {
                updateFrom(member, at, config, updaters, active, regularizationLosses);
            }
        }
        return loss(losses, regularizationLosses);
    }

    /** The updates of the parameters whose gradients are among {@code call}'s outputs. */
    private void updateFrom(Call call, At at, TrainingConfig config, Map<String, GradientUpdater> updaters, List<Listener> active,
                            Map<Class<?>, double[]> regularizationLosses) {
        List<String> names = call.op().getOutputsOfOp();
        for (int j = 0; j < names.size(); j++) {
            String variable = variableOfGradient.get(names.get(j));
            if (variable != null) {
                update(variable, call.outputs()[j], at, config, updaters.get(variable), active, regularizationLosses);
            }
        }
    }

    /** As SameDiff's {@code TrainingSession}: regularisation before, the updater, regularisation after, listeners, then the step. */
    private void update(String name, INDArray gradient, At at, TrainingConfig config, GradientUpdater updater, List<Listener> active,
                        Map<Class<?>, double[]> regularizationLosses) {
        if (updater == null) {
            throw new IllegalStateException("No updater for trainable variable '" + name + "': create the updaters before training");
        }
        INDArray parameter = gradients.getArrForVarName(name);
        ReplayKernels.ParameterStep kernel = adamSteps.stepFor(name, parameter, gradient, updater, config);
        List<Regularization> regularizations = config.getRegularization();
        regularize(regularizations, Regularization.ApplyStep.BEFORE_UPDATER, parameter, gradient, at, config, regularizationLosses);
        boolean finite = true;
        if (kernel != null) {
            finite = AdamSteps.update(kernel, updater, at);
        } else {
            updater.applyUpdater(gradient, at.iteration(), at.epoch());
        }
        regularize(regularizations, Regularization.ApplyStep.POST_UPDATER, parameter, gradient, at, config, regularizationLosses);
        Variable variable = gradients.getVariables().get(name);
        for (Listener listener : active) {
            if (kernel != null && listener instanceof NonFiniteGuard guard) {
                guard.preUpdate(variable, finite);
            } else {
                listener.preUpdate(gradients, at, variable, gradient);
            }
        }
        if (kernel != null) {
            kernel.step();
        } else if (config.isMinimize()) {
            parameter.subi(gradient);
        } else {
            parameter.addi(gradient);
        }
    }

    private static void regularize(List<Regularization> regularizations, Regularization.ApplyStep step, INDArray parameter, INDArray gradient,
                                   At at, TrainingConfig config, Map<Class<?>, double[]> regularizationLosses) {
        if (regularizations == null || regularizations.isEmpty()) {
            return;
        }
        double learningRate = config.getUpdater().hasLearningRate() ? config.getUpdater().getLearningRate(at.iteration(), at.epoch()) : 1.0;
        for (Regularization regularization : regularizations) {
            if (regularization.applyStep() == step) {
                regularizationLosses.computeIfAbsent(regularization.getClass(), unused -> new double[1])[0]
                        += regularization.score(parameter, at.iteration(), at.epoch());
                regularization.apply(parameter, gradient, learningRate, at.iteration(), at.epoch());
            }
        }
    }

    /** The loss as SameDiff reports it: the loss variables' values, then one entry per regularisation type. */
    private Loss loss(double[] losses, Map<Class<?>, double[]> regularizationLosses) {
        if (regularizationLosses.isEmpty()) {
            return new Loss(lossVariables, losses);
        }
        List<String> names = new ArrayList<>(lossVariables);
        double[] all = Arrays.copyOf(losses, losses.length + regularizationLosses.size());
        int index = losses.length;
        for (Map.Entry<Class<?>, double[]> entry : regularizationLosses.entrySet()) {
            names.add(entry.getKey().getSimpleName());
            all[index++] = entry.getValue()[0];
        }
        return new Loss(names, all);
    }
}
