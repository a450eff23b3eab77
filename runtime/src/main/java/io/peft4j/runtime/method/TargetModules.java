package io.peft4j.runtime.method;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Hugging Face PEFT's rules for naming the layers an adapter targets ({@code target_modules}).
 *
 * <p>A list entry selects a module whose path equals it or ends with {@code "." + entry}; a single
 * string is a regular expression that must match the whole path.
 */
public final class TargetModules {

    private TargetModules() {
    }

    /** Whether list entry {@code target} selects the module at {@code path}. */
    public static boolean matches(String target, String path) {
        return path.equals(target) || path.endsWith("." + target);
    }

    /** Whether the list {@code targets} selects {@code path}. */
    public static boolean matchesAny(Collection<String> targets, String path) {
        return targets.stream().anyMatch(target -> matches(target, path));
    }

    /** Whether the regular expression {@code pattern} matches the whole of {@code path}; an invalid pattern matches nothing. */
    public static boolean matchesRegex(String pattern, String path) {
        try {
            return Pattern.compile(pattern).matcher(path).matches();
        } catch (PatternSyntaxException notARegex) {
            return false;
        }
    }

    /**
     * {@code adapted} (module paths) in PEFT's short form where it is safe: each layer by the name after
     * its last dot when that name selects only adapted layers among every module path of the model
     * ({@code modules}), else by its full path. List indices ({@code blocks.0}) always keep their full
     * path, since a bare {@code "0"} would select every first element of every list in a PyTorch model.
     * Sorted, as PEFT writes sets; selects exactly {@code adapted}.
     */
    public static List<String> shortest(Collection<String> adapted, Collection<String> modules) {
        Set<String> all = new LinkedHashSet<>(modules);
        all.addAll(adapted);
        Set<String> targets = new TreeSet<>();
        for (String path : adapted) {
            String name = path.substring(path.lastIndexOf('.') + 1);
            boolean index = name.chars().allMatch(Character::isDigit);
            boolean exact = all.stream().filter(module -> matches(name, module)).allMatch(adapted::contains);
            targets.add(!index && exact ? name : path);
        }
        return new ArrayList<>(targets);
    }
}
