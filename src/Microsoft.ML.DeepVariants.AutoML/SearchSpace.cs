using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.DeepVariants.AutoML;

/// <summary>How a parameter's values are drawn.</summary>
public enum ParameterKind
{
    /// <summary>One of a list of values.</summary>
    Choice,
    /// <summary>A real number, uniform in [min, max].</summary>
    Uniform,
    /// <summary>A real number whose logarithm is uniform in [ln min, ln max] (learning rates, weight decay).</summary>
    LogUniform,
    /// <summary>A whole number, uniform in [min, max].</summary>
    Integer,
    /// <summary>A whole number whose logarithm is uniform (widths, batch sizes).</summary>
    LogInteger,
}

/// <summary>
/// One searchable parameter. A conditional parameter exists only when <see cref="Condition"/> holds for the values
/// drawn before it (parameters are drawn in the order they were added), which is how nested spaces are written.
/// </summary>
public sealed class SearchParameter
{
    internal SearchParameter(string name, ParameterKind kind, double min, double max, IReadOnlyList<object> choices)
    {
        Name = name;
        Kind = kind;
        Min = min;
        Max = max;
        Choices = choices;
    }

    /// <summary>The parameter's name, its key in a <see cref="Configuration"/>.</summary>
    public string Name { get; }
    /// <summary>How values are drawn.</summary>
    public ParameterKind Kind { get; }
    /// <summary>Lower bound of a numeric range.</summary>
    public double Min { get; }
    /// <summary>Upper bound of a numeric range.</summary>
    public double Max { get; }
    /// <summary>The values of a choice (strings, numbers or booleans).</summary>
    public IReadOnlyList<object> Choices { get; }
    /// <summary>When the parameter exists, given the values drawn before it; always when null.</summary>
    public Func<Configuration, bool>? Condition { get; private set; }
    /// <summary>The condition in words, for the journal and the leaderboard.</summary>
    public string? ConditionText { get; private set; }

    /// <summary>Makes the parameter exist only when <paramref name="condition"/> holds for the values drawn before it.</summary>
    /// <example><code>space.Integer("width3", 8, 64).When("depth >= 3", c => c.GetInt("depth") >= 3);</code></example>
    public SearchParameter When(string description, Func<Configuration, bool> condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ConditionText = description;
        Condition = condition;
        return this;
    }

    internal bool IsNumeric => Kind != ParameterKind.Choice;
    internal bool IsLog => Kind is ParameterKind.LogUniform or ParameterKind.LogInteger;
    internal bool IsInteger => Kind is ParameterKind.Integer or ParameterKind.LogInteger;

    // Numeric parameters live in an internal [lo, hi] (log space for the log kinds); choices by index.
    internal double Low => IsLog ? Math.Log(Min) : IsInteger ? Min - 0.5 : Min;
    internal double High => IsLog ? Math.Log(Max) : IsInteger ? Max + 0.5 : Max;

    internal object FromInternal(double x)
    {
        if (Kind == ParameterKind.Choice)
            return Choices[Math.Clamp((int)x, 0, Choices.Count - 1)];
        double value = IsLog ? Math.Exp(x) : x;
        return IsInteger ? (object)(int)Math.Clamp(Math.Round(value), Min, Max) : Math.Clamp(value, Min, Max);
    }

    internal double ToInternal(object value) => Kind switch
    {
        ParameterKind.Choice => IndexOf(value),
        _ => IsLog ? Math.Log(Convert.ToDouble(value, CultureInfo.InvariantCulture)) : Convert.ToDouble(value, CultureInfo.InvariantCulture),
    };

    internal int IndexOf(object value)
    {
        for (int i = 0; i < Choices.Count; i++)
            if (Equals(Choices[i], value) || string.Equals(Convert.ToString(Choices[i], CultureInfo.InvariantCulture),
                    Convert.ToString(value, CultureInfo.InvariantCulture), StringComparison.OrdinalIgnoreCase))
                return i;
        throw new ArgumentException($"'{value}' is not a choice of parameter '{Name}'.");
    }

    internal string Describe() => (Kind == ParameterKind.Choice
        ? $"{Name}: choice of {string.Join(", ", Choices)}"
        : FormattableString.Invariant($"{Name}: {Kind} in [{Min}, {Max}]")) + (ConditionText is null ? "" : $" when {ConditionText}");
}

/// <summary>
/// A search space: named parameters drawn in order, each a choice, a uniform or log-uniform real, or a (log-)uniform
/// integer, optionally conditional on those before it.
/// </summary>
/// <example>
/// <code>
/// var space = new SearchSpace();
/// space.Choice("optimizer", "Adam", "Sgd");
/// space.LogUniform("learningRate", 1e-4, 1e-1);
/// space.Integer("depth", 1, 4);
/// space.LogInteger("width3", 8, 64).When("depth >= 3", c => c.GetInt("depth") >= 3);
/// </code>
/// </example>
public sealed class SearchSpace
{
    private readonly List<SearchParameter> _parameters = [];

    /// <summary>The parameters, in drawing order.</summary>
    public IReadOnlyList<SearchParameter> Parameters => _parameters;

    /// <summary>A choice among <paramref name="values"/>.</summary>
    public SearchParameter Choice(string name, params object[] values)
    {
        if (values is null || values.Length == 0)
            throw new ArgumentException($"Choice '{name}' needs at least one value.", nameof(values));
        return Add(new SearchParameter(name, ParameterKind.Choice, 0, values.Length - 1, values));
    }

    /// <summary>A real number uniform in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public SearchParameter Uniform(string name, double min, double max) => Add(Range(name, ParameterKind.Uniform, min, max));

    /// <summary>A positive real number with a uniform logarithm.</summary>
    public SearchParameter LogUniform(string name, double min, double max) => Add(Range(name, ParameterKind.LogUniform, min, max));

    /// <summary>A whole number uniform in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public SearchParameter Integer(string name, int min, int max) => Add(Range(name, ParameterKind.Integer, min, max));

    /// <summary>A positive whole number with a uniform logarithm.</summary>
    public SearchParameter LogInteger(string name, int min, int max) => Add(Range(name, ParameterKind.LogInteger, min, max));

    /// <summary>Draws a configuration uniformly from the space (conditions applied in order).</summary>
    public Configuration Sample(Random random)
    {
        var configuration = new Configuration();
        foreach (var parameter in _parameters)
        {
            if (parameter.Condition is { } condition && !condition(configuration))
                continue;
            double x = parameter.Kind == ParameterKind.Choice
                ? random.Next(parameter.Choices.Count)
                : parameter.Low + random.NextDouble() * (parameter.High - parameter.Low);
            configuration.Set(parameter.Name, parameter.FromInternal(x));
        }
        return configuration;
    }

    /// <summary>The space in words, one parameter a line; the journal keeps it so that a resumed sweep can check it is the same space.</summary>
    public string Describe() => string.Join("\n", _parameters.Select(p => p.Describe()));

    private SearchParameter Add(SearchParameter parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(parameter.Name);
        if (_parameters.Any(p => p.Name == parameter.Name))
            throw new ArgumentException($"The space already has a parameter '{parameter.Name}'.");
        _parameters.Add(parameter);
        return parameter;
    }

    private static SearchParameter Range(string name, ParameterKind kind, double min, double max)
    {
        if (!double.IsFinite(min) || !double.IsFinite(max) || min > max)
            throw new ArgumentOutOfRangeException(nameof(min), $"Parameter '{name}' needs finite bounds with min <= max, got [{min}, {max}].");
        if (kind is ParameterKind.LogUniform or ParameterKind.LogInteger && min <= 0)
            throw new ArgumentOutOfRangeException(nameof(min), $"Parameter '{name}' is logarithmic, so its bounds must be above zero, got [{min}, {max}].");
        return new SearchParameter(name, kind, min, max, []);
    }
}

/// <summary>The values of one trial's parameters, by name, in drawing order; absent conditional parameters are simply missing.</summary>
public sealed class Configuration
{
    private readonly List<KeyValuePair<string, object>> _values = [];

    /// <summary>The values in drawing order.</summary>
    public IReadOnlyList<KeyValuePair<string, object>> Values => _values;

    /// <summary>Whether the parameter exists in this configuration.</summary>
    public bool Has(string name) => _values.Any(v => v.Key == name);

    /// <summary>The value of <paramref name="name"/>.</summary>
    public object this[string name] => _values.FirstOrDefault(v => v.Key == name).Value
        ?? throw new KeyNotFoundException($"The configuration has no parameter '{name}'.");

    /// <summary>A whole-number value.</summary>
    public int GetInt(string name) => Convert.ToInt32(this[name], CultureInfo.InvariantCulture);

    /// <summary>A real value.</summary>
    public double GetDouble(string name) => Convert.ToDouble(this[name], CultureInfo.InvariantCulture);

    /// <summary>A value as text.</summary>
    public string GetString(string name) => Convert.ToString(this[name], CultureInfo.InvariantCulture) ?? "";

    /// <summary>A boolean value.</summary>
    public bool GetBool(string name) => this[name] is bool b ? b : bool.Parse(GetString(name));

    // The space's parameters in its drawing order, then any others (a Python worker's) as they came.
    internal Configuration InOrderOf(SearchSpace space)
    {
        var ordered = new Configuration();
        foreach (var parameter in space.Parameters.Where(p => Has(p.Name)))
            ordered.Set(parameter.Name, this[parameter.Name]);
        foreach (var (key, value) in _values.Where(v => !ordered.Has(v.Key)))
            ordered.Set(key, value);
        return ordered;
    }

    internal void Set(string name, object value)
    {
        _values.RemoveAll(v => v.Key == name);
        _values.Add(new(name, value));
    }

    /// <summary>The configuration as a JSON object (numbers, strings and booleans, in drawing order).</summary>
    public string ToJson()
    {
        var json = new JsonObject();
        foreach (var (key, value) in _values)
            json[key] = value switch
            {
                int i => JsonValue.Create(i),
                double d => JsonValue.Create(Math.Round(d, 12)),
                bool b => JsonValue.Create(b),
                _ => JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture)),
            };
        return json.ToJsonString();
    }

    /// <summary>A configuration from <see cref="ToJson"/>; values take the types the space gives them.</summary>
    public static Configuration FromJson(string json, SearchSpace space)
    {
        var configuration = new Configuration();
        var node = JsonNode.Parse(json)?.AsObject() ?? throw new JsonException("The configuration JSON is not an object.");
        foreach (var (key, value) in node)
        {
            var parameter = space.Parameters.FirstOrDefault(p => p.Name == key)
                ?? throw new JsonException($"The configuration names '{key}', which the search space does not have.");
            object typed = parameter.Kind == ParameterKind.Choice
                ? parameter.Choices[parameter.IndexOf(value!.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString())]
                : parameter.IsInteger ? value!.GetValue<int>() : value!.GetValue<double>();
            configuration.Set(key, typed);
        }
        return configuration;
    }

    /// <inheritdoc/>
    public override string ToString() => string.Join(", ", _values.Select(v => FormattableString.Invariant($"{v.Key}={Format(v.Value)}")));

    private static string Format(object value) => value is double d ? d.ToString("G4", CultureInfo.InvariantCulture) : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
}
