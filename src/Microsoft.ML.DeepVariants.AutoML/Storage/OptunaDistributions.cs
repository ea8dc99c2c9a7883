using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.DeepVariants.AutoML.Storage;

/// <summary>
/// A search parameter as Optuna 3.1 writes it: <c>FloatDistribution</c> (Uniform, LogUniform), <c>IntDistribution</c>
/// (Integer, LogInteger; step 1) and <c>CategoricalDistribution</c> (Choice, stored by index), with Optuna's JSON
/// (<c>optuna.distributions.distribution_to_json</c>) and its internal values.
/// </summary>
internal static class OptunaDistributions
{
    public static StoredParam ToStored(SearchParameter parameter, object value)
    {
        var attributes = new JsonObject();
        string name;
        switch (parameter.Kind)
        {
            case ParameterKind.Choice:
                name = "CategoricalDistribution";
                attributes["choices"] = new JsonArray(parameter.Choices.Select(ToNode).ToArray());
                return new StoredParam(parameter.Name, parameter.IndexOf(value), Serialize(name, attributes));
            case ParameterKind.Uniform or ParameterKind.LogUniform:
                name = "FloatDistribution";
                attributes["step"] = null;
                attributes["low"] = parameter.Min;
                attributes["high"] = parameter.Max;
                attributes["log"] = parameter.IsLog;
                break;
            default:
                name = "IntDistribution";
                attributes["log"] = parameter.IsLog;
                attributes["step"] = 1;
                attributes["low"] = (int)parameter.Min;
                attributes["high"] = (int)parameter.Max;
                break;
        }
        return new StoredParam(parameter.Name, Convert.ToDouble(value, CultureInfo.InvariantCulture), Serialize(name, attributes));
    }

    /// <summary>A stored parameter's value as Optuna hands it to the user: the choice itself for a categorical, an integer for an int.</summary>
    public static object? ToExternal(StoredParam parameter)
    {
        var json = JsonNode.Parse(parameter.DistributionJson)!.AsObject();
        string name = json["name"]!.GetValue<string>();
        var attributes = json["attributes"]!.AsObject();
        return name switch
        {
            "CategoricalDistribution" => FromNode(attributes["choices"]!.AsArray()[(int)parameter.Value]),
            "IntDistribution" or "IntUniformDistribution" or "IntLogUniformDistribution" => (int)Math.Round(parameter.Value),
            _ => parameter.Value,
        };
    }

    /// <summary>An external value (from JSON: Optuna's <c>fixed_params</c>) as the parameter's own type.</summary>
    public static object FromExternal(SearchParameter parameter, JsonNode? value) => FromExternal(parameter, FromNode(value));

    /// <summary>An external value (a choice, a number) as the parameter's own type.</summary>
    public static object FromExternal(SearchParameter parameter, object? value) => parameter.Kind switch
    {
        ParameterKind.Choice => parameter.Choices[parameter.IndexOf(value ?? "null")],
        ParameterKind.Integer or ParameterKind.LogInteger => (int)Math.Round(Convert.ToDouble(value, CultureInfo.InvariantCulture)),
        _ => Convert.ToDouble(value, CultureInfo.InvariantCulture),
    };

    private static string Serialize(string name, JsonObject attributes) =>
        new JsonObject { ["name"] = name, ["attributes"] = attributes }.ToJsonString();

    private static JsonNode? ToNode(object choice) => choice switch
    {
        bool b => JsonValue.Create(b),
        int i => JsonValue.Create(i),
        long l => JsonValue.Create(l),
        double d => JsonValue.Create(d),
        float f => JsonValue.Create((double)f),
        null => null,
        _ => JsonValue.Create(Convert.ToString(choice, CultureInfo.InvariantCulture)),
    };

    private static object? FromNode(JsonNode? node) => node?.GetValueKind() switch
    {
        null or JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => node.GetValue<double>() is var d && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue ? (object)(int)d : d,
        _ => node.GetValue<string>(),
    };
}
