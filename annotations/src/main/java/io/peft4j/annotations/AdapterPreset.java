package io.peft4j.annotations;

/** AdapterHub's bottleneck adapter configurations (reduction factor 16 for both). */
public enum AdapterPreset {

    /** Pfeiffer et al. 2021: one adapter after the feed-forward block, ReLU. */
    PFEIFFER("relu"),

    /** Houlsby et al. 2019: adapters after the attention block and after the feed-forward block, swish. */
    HOULSBY("swish");

    private final String activation;

    AdapterPreset(String activation) {
        this.activation = activation;
    }

    /** The preset's non-linearity. */
    public String activation() {
        return activation;
    }
}
