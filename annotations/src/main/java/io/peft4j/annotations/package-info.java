/**
 * The annotations a model's own code carries to take part in Parameter-Efficient Fine-Tuning.
 *
 * <p>They are retained at run time: the peft4j agent matches them to wrap forward methods, the
 * runtime reads their values, and the annotation processor checks them at compile time.
 */
package io.peft4j.annotations;
