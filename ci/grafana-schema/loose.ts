/**
 * The shape a dashboard has as JSON. @grafana/schema types some fields with
 * TypeScript enums (e.g. `ThresholdsMode.Absolute`); a dashboard file holds their
 * values ("absolute"). `FromJson<T>` is T with every string enum replaced by the
 * union of its values, and every numeric enum by number; everything else — required
 * fields, string unions, nesting, and the rejection of unknown keys in object
 * literals — is checked as @grafana/schema declares it.
 */
export type FromJson<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends number
    ? number
    : T extends boolean
      ? boolean
      : T extends ReadonlyArray<infer U>
        ? Array<FromJson<U>>
        : T extends object
          ? { [K in keyof T]: FromJson<T[K]> }
          : T;
