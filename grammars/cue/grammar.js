/**
 * @file CUE grammar for tree-sitter, written for tagsmith from the CUE language specification.
 * @license Apache-2.0
 */

/// <reference types="tree-sitter-cli/dsl" />
// @ts-check

// Binary operator precedence, lowest first, as the spec's precedence table orders them.
const PREC = {
  disjunction: 1, // |
  unification: 2, // &
  or: 3, // ||
  and: 4, // &&
  compare: 5, // == != < <= > >= =~ !~
  add: 6, // + -
  multiply: 7, // * /
  unary: 8,
  primary: 9,
};

// Keywords may be used as labels (field names); the spec says so explicitly.
const KEYWORDS = ['package', 'import', 'for', 'in', 'if', 'let', 'true', 'false', 'null'];

const decimals = /[0-9](_?[0-9])*/;
const exponent = /[eE][+-]?[0-9](_?[0-9])*/;
const multiplier = /[KMGTP]i?/;

/**
 * Items separated by commas or by the newlines that CUE turns into commas, with an optional
 * trailing separator.
 *
 * @param {RuleOrLiteral} item
 * @param {RuleOrLiteral} sep
 * @returns {SeqRule}
 */
function sepList(item, sep) {
  return seq(item, repeat(seq(sep, item)), optional(sep));
}

module.exports = grammar({
  name: 'cue',

  externals: $ => [
    $._newline,
    $.string_start,
    $.string_content,
    $.escape_sequence,
    $._interpolation_start,
    $.string_end,
    $.attribute_text,
    // Never valid in any parse state: when the scanner sees it valid, the parser is recovering
    // from an error and the scanner stays out of the way.
    $._error_sentinel,
  ],

  extras: $ => [$.comment, /\s/, '\uFEFF'],

  word: $ => $.identifier,

  supertypes: $ => [$._expression],

  conflicts: $ => [
    // `(x)` at the start of a declaration is a dynamic label if a `:` follows, else an
    // embedded parenthesized expression; one token of lookahead cannot tell.
    [$._alias_expression, $.parenthesized_expression],
    // `if!: x` is a required field named `if`; `if !x {` a guard.
    [$._label_name, $.if_clause],
  ],

  rules: {
    source_file: $ => optional(sepList($._top_declaration, $._separator)),

    _top_declaration: $ => choice($.package_clause, $.import_declaration, $._declaration),

    // CUE lets an explicit comma follow the comma a newline stands for: `a: 1` then `, b: 2`.
    _separator: $ => choice(',', seq($._newline, optional(','))),

    // Runs to the end of the line; the CR of a CRLF line ending is not part of it, so a marker
    // read from a comment is the same in LF and CRLF files.
    comment: _ => token(seq('//', /([^\r\n]|\r+[^\r\n])*/)),

    package_clause: $ => seq('package', field('name', $.identifier)),

    import_declaration: $ =>
      seq(
        'import',
        choice($.import_spec, seq('(', optional(sepList($.import_spec, $._separator)), ')')),
      ),

    import_spec: $ => seq(optional(field('name', $.identifier)), field('path', $.string)),

    // Declarations.

    _declaration: $ =>
      choice($.field, $.ellipsis, $.comprehension, $.let_clause, $.attribute, $._alias_expression),

    struct: $ => seq('{', optional(sepList($._declaration, $._separator)), '}'),

    // `a: b: c: 1` nests: each label owns the field to its right.
    field: $ =>
      prec.right(
        seq(
          field('label', $.label),
          ':',
          field('value', choice($.field, $._alias_expression)),
          repeat(field('attribute', $.attribute)),
        ),
      ),

    label: $ =>
      seq(
        optional(seq(field('alias', $.identifier), '=')),
        choice(
          seq(field('name', $._label_name), optional(field('constraint', choice($.optional, $.required)))),
          field('pattern', $.pattern_label),
        ),
      ),

    _label_name: $ =>
      choice($.identifier, alias(choice(...KEYWORDS), $.identifier), $.string, $.dynamic_label),

    optional: _ => '?',
    required: _ => '!',

    dynamic_label: $ => seq('(', $._alias_expression, ')'),

    pattern_label: $ => seq('[', $._alias_expression, ']'),

    ellipsis: $ => prec.right(seq('...', optional(field('value', $._expression)))),

    alias: $ => seq(field('name', $.identifier), '=', field('value', $._expression)),

    _alias_expression: $ => choice($.alias, $._expression),

    attribute: $ =>
      seq('@', field('name', $.identifier), token.immediate('('), optional($.attribute_text), ')'),

    // Comprehensions.

    comprehension: $ =>
      seq(
        field('clause', choice($.for_clause, $.if_clause)),
        repeat(seq(optional($._separator), field('clause', choice($.for_clause, $.if_clause, $.let_clause)))),
        // CUE accepts a comma or a line break before the body as well.
        optional($._separator),
        field('body', $.struct),
      ),

    for_clause: $ =>
      seq(
        'for',
        optional(seq(field('key', $.identifier), ',')),
        field('value', $.identifier),
        'in',
        field('source', $._expression),
      ),

    if_clause: $ => seq('if', field('condition', $._expression)),

    let_clause: $ => seq('let', field('name', $.identifier), '=', field('value', $._expression)),

    // Expressions.

    _expression: $ => choice($._unary, $.binary_expression, $.unification, $.disjunction),

    disjunction: $ =>
      prec.left(PREC.disjunction, seq(field('left', $._expression), '|', field('right', $._expression))),

    unification: $ =>
      prec.left(PREC.unification, seq(field('left', $._expression), '&', field('right', $._expression))),

    binary_expression: $ => {
      const table = [
        [PREC.or, '||'],
        [PREC.and, '&&'],
        [PREC.compare, choice('==', '!=', '<', '<=', '>', '>=', '=~', '!~')],
        [PREC.add, choice('+', '-')],
        [PREC.multiply, choice('*', '/')],
      ];
      return choice(
        ...table.map(([p, op]) =>
          prec.left(
            /** @type {number} */ (p),
            seq(field('left', $._expression), field('operator', op), field('right', $._expression)),
          ),
        ),
      );
    },

    _unary: $ => choice($._primary, $.unary_expression, $.default),

    // `*v` marks the default of a disjunction; every other prefix operator is plain unary.
    default: $ => prec(PREC.unary, seq('*', field('value', $._unary))),

    unary_expression: $ =>
      prec(
        PREC.unary,
        seq(
          field('operator', choice('+', '-', '!', '!=', '<', '<=', '>', '>=', '=~', '!~')),
          field('operand', $._unary),
        ),
      ),

    _primary: $ => choice($._operand, $.selector_expression, $.index_expression, $.call_expression),

    _operand: $ =>
      choice(
        $.identifier,
        // CUE lets keywords refer to fields of their name too; only `in` is taken here, since
        // `if (`, `for (`, `let (` and `import (` would otherwise read two ways.
        alias('in', $.identifier),
        $.string,
        $.integer,
        $.float,
        $.boolean,
        $.null,
        $.bottom,
        $.struct,
        $.list,
        $.parenthesized_expression,
      ),

    parenthesized_expression: $ => seq('(', $._expression, ')'),

    selector_expression: $ =>
      prec(
        PREC.primary,
        seq(
          field('operand', $._primary),
          '.',
          field('selector', choice($.identifier, alias(choice(...KEYWORDS), $.identifier), $.string)),
        ),
      ),

    index_expression: $ =>
      prec(PREC.primary, seq(field('operand', $._primary), '[', field('index', $._expression), ']')),

    call_expression: $ =>
      prec(PREC.primary, seq(field('function', $._primary), field('arguments', $.arguments))),

    arguments: $ => seq('(', optional(sepList($._expression, $._separator)), ')'),

    list: $ => seq('[', optional(sepList(choice($._alias_expression, $.comprehension, $.ellipsis), $._separator)), ']'),

    // Literals.

    identifier: _ => /(#|_#)?[\p{L}_$][\p{L}\p{Nd}_$]*/u,

    boolean: _ => choice('true', 'false'),

    null: _ => 'null',

    bottom: _ => '_|_',

    // Integers, including SI/IEC multiplier literals such as `1.5G` and `2Ki`, which are
    // integers in CUE even when written with a fraction.
    integer: _ =>
      token(
        choice(
          /0|[1-9](_?[0-9])*/,
          /0[xX][0-9a-fA-F](_?[0-9a-fA-F])*/,
          /0o[0-7](_?[0-7])*/,
          /0b[01](_?[01])*/,
          seq(decimals, optional(seq('.', decimals)), multiplier),
          seq('.', decimals, multiplier),
        ),
      ),

    float: _ =>
      token(
        choice(
          seq(decimals, '.', optional(decimals), optional(exponent)),
          seq(decimals, exponent),
          seq('.', decimals, optional(exponent)),
        ),
      ),

    // One node for every string form; its `string_start` and `string_end` children hold the
    // delimiters as written (`"`, `'`, `"""`, `'''`, each with any `#` padding), so a reader can
    // tell the form and the escape delimiter from them alone.
    string: $ =>
      seq(
        $.string_start,
        repeat(choice($.string_content, $.escape_sequence, $.interpolation)),
        $.string_end,
      ),

    interpolation: $ => seq($._interpolation_start, field('expression', $._expression), ')'),
  },
});
