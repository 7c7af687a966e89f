// Terraform's expression language, the part the stacks' computed values use: references, numbers,
// strings, comparisons, and the functions length, element and try, with the semantics Terraform
// documents (https://developer.hashicorp.com/terraform/language/functions): element on an empty
// list is an error, its index wraps; try returns its first argument that evaluates without an
// error. CI cannot install Terraform (its releases host is unreachable there, and no registry the
// runner reaches ships it), so a synthesized expression is evaluated here; anything outside this
// subset is an error, so a new construct's expression fails the test until it is covered.
type Value = string | number | boolean | Value[];

class EvalError extends Error {}

const TOKEN = /\s*(?:(\d+)|"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)|(>=|<=|==|!=|[(),<>\[\]]))/y;

function tokenize(text: string): string[][] {
  const out: string[][] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (!m) throw new EvalError(`cannot parse at ${at}: ${text.slice(at)}`);
    out.push(m[1] !== undefined ? ["num", m[1]] : m[2] !== undefined ? ["str", JSON.parse(`"${m[2]}"`) as string] : m[3] !== undefined ? ["name", m[3]] : ["op", m[4] as string]);
  }
  return out;
}

/** Evaluates one `${…}` template (the whole string) against `scope` (reference → value). */
export function evaluate(template: string, scope: Record<string, Value>): Value {
  const inner = /^\$\{([\s\S]*)\}$/.exec(template)?.[1];
  if (inner === undefined) throw new EvalError(`not a single interpolation: ${template}`);
  const tokens = tokenize(inner);
  let i = 0;
  const peek = () => tokens[i];
  const take = (op?: string) => {
    const t = tokens[i++];
    if (t === undefined || (op !== undefined && (t[0] !== "op" || t[1] !== op))) throw new EvalError(`expected ${op ?? "a term"} in ${inner}`);
    return t;
  };
  // Arguments are thunks: try must see an argument's error, not have it thrown at the call.
  type Thunk = () => Value;
  const functions: Record<string, (args: Thunk[]) => Value> = {
    length: ([a, ...rest]) => {
      const v = a?.();
      if (rest.length > 0 || !Array.isArray(v)) throw new EvalError("length takes one list");
      return v.length;
    },
    element: ([l, n, ...rest]) => {
      const list = l?.();
      const index = n?.();
      if (rest.length > 0 || !Array.isArray(list) || typeof index !== "number") throw new EvalError("element takes a list and an index");
      if (list.length === 0) throw new EvalError("cannot use element function with an empty list");
      return list[index % list.length] as Value;
    },
    try: (args) => {
      for (const arg of args) {
        try {
          return arg();
        } catch (e) {
          if (!(e instanceof EvalError)) throw e;
        }
      }
      throw new EvalError("no expression given to try could be evaluated without an error");
    },
  };
  const primary = (): Thunk => {
    const [kind, text] = take();
    if (kind === "num") return () => Number(text);
    if (kind === "str") return () => text as string;
    if (kind === "name" && peek()?.[0] === "op" && peek()?.[1] === "(") {
      const fn = functions[text as string];
      if (!fn) throw new EvalError(`function ${text} is not covered here`);
      take("(");
      const args: Thunk[] = [];
      while (!(peek()?.[0] === "op" && peek()?.[1] === ")")) {
        args.push(expression());
        if (peek()?.[1] === ",") take(",");
      }
      take(")");
      return () => fn(args);
    }
    if (kind === "name") {
      if (!Object.hasOwn(scope, text as string)) throw new EvalError(`unknown reference ${text}`);
      return () => scope[text as string] as Value;
    }
    throw new EvalError(`unexpected ${text} in ${inner}`);
  };
  const expression = (): Thunk => {
    const left = primary();
    const op = peek();
    if (op?.[0] !== "op" || !["<", ">", "<=", ">=", "==", "!="].includes(op[1] as string)) return left;
    i++;
    const right = primary();
    return () => {
      const a = left();
      const b = right();
      if (op[1] === "==") return JSON.stringify(a) === JSON.stringify(b);
      if (op[1] === "!=") return JSON.stringify(a) !== JSON.stringify(b);
      if (typeof a !== "number" || typeof b !== "number") throw new EvalError(`${op[1]} compares numbers`);
      return op[1] === "<" ? a < b : op[1] === ">" ? a > b : op[1] === "<=" ? a <= b : a >= b;
    };
  };
  const result = expression();
  if (i !== tokens.length) throw new EvalError(`unexpected ${tokens[i]?.[1]} in ${inner}`);
  return result();
}
