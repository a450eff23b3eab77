package io.peft4j.runtime.method;

import io.peft4j.runtime.PeftException;
import java.lang.annotation.Annotation;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

/**
 * Every {@link PeftMethod} on the class path, found once through {@link ServiceLoader}
 * ({@code META-INF/services/io.peft4j.runtime.method.PeftMethod}): the built-in ones and any a jar registers.
 */
public final class PeftMethods {

    private static volatile List<PeftMethod> methods;

    private PeftMethods() {
    }

    /** The registered methods, in class-path order (the built-in ones first). */
    public static List<PeftMethod> all() {
        List<PeftMethod> found = methods;
        if (found == null) {
            synchronized (PeftMethods.class) {
                if (methods == null) {
                    Map<String, PeftMethod> byName = new LinkedHashMap<>();
                    for (ClassLoader loader : loaders()) {
                        for (PeftMethod method : ServiceLoader.load(PeftMethod.class, loader)) {
                            byName.putIfAbsent(method.name(), method);
                        }
                    }
                    methods = List.copyOf(byName.values());
                }
                found = methods;
            }
        }
        return found;
    }

    private static List<ClassLoader> loaders() {
        List<ClassLoader> loaders = new ArrayList<>();
        loaders.add(PeftMethod.class.getClassLoader());
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        if (context != null && context != loaders.get(0)) {
            loaders.add(context);
        }
        return loaders;
    }

    /** The method that {@code annotation} declares. */
    public static PeftMethod byAnnotation(Class<? extends Annotation> annotation) {
        return all().stream().filter(method -> method.annotation() == annotation).findFirst()
                .orElseThrow(() -> new PeftException("@" + annotation.getSimpleName() + " declares no PEFT method that peft4j knows; "
                        + "methods: " + describe()));
    }

    /** The method whose configs carry {@code peftType}. */
    public static PeftMethod byPeftType(String peftType) {
        return all().stream().filter(method -> method.peftType().equals(peftType)).findFirst()
                .orElseThrow(() -> new PeftException("peft_type " + peftType + " is not a method peft4j knows; methods: " + describe()));
    }

    private static String describe() {
        return all().stream().map(method -> method.name() + " (@" + method.annotation().getSimpleName() + ", " + method.peftType() + ")")
                .collect(Collectors.joining(", "));
    }
}
