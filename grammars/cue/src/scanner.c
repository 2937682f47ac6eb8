// External scanner for the CUE grammar.
//
// It owns the tokens a context-free lexer cannot produce:
// - newlines that CUE turns into commas, so that they separate declarations only where the
//   parser expects a separator (elsewhere a newline is plain whitespace);
// - string pieces, because the closing delimiter and the escape delimiter depend on how the
//   string was opened (`"`, `'`, `"""`, `'''`, each padded with any number of `#`), and strings
//   nest through interpolations, so the scanner keeps a stack of open delimiters;
// - the body of an attribute, a balanced token sequence that is kept as text.

#include "tree_sitter/parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum TokenType {
  NEWLINE,
  STRING_START,
  STRING_CONTENT,
  ESCAPE_SEQUENCE,
  INTERPOLATION_START,
  STRING_END,
  ATTRIBUTE_TEXT,
  ERROR_SENTINEL,
};

typedef struct {
  uint8_t quote;
  uint8_t multiline;
  uint8_t hashes;
} Delimiter;

// Three bytes per open string must fit the serialization buffer.
#define MAX_DEPTH (TREE_SITTER_SERIALIZATION_BUFFER_SIZE / 3)

typedef struct {
  unsigned depth;
  Delimiter stack[MAX_DEPTH];
} Scanner;

static void advance(TSLexer *lexer) { lexer->advance(lexer, false); }

static void skip(TSLexer *lexer) { lexer->advance(lexer, true); }

static bool is_hex(int32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_octal(int32_t c) { return c >= '0' && c <= '7'; }

static bool take_digits(TSLexer *lexer, unsigned count, bool (*accept)(int32_t)) {
  for (unsigned i = 0; i < count; i++) {
    if (!accept(lexer->lookahead)) {
      return false;
    }
    advance(lexer);
  }
  return true;
}

// The part of an escape after `\` and its `#` padding, as the spec lists them. Hex and octal
// byte values are only allowed in byte sequences, and each quote may only be escaped inside
// literals it delimits. The spec also describes a backslash that elides a line break, but CUE
// itself rejects it as an unknown escape, and so does this scanner.
static bool scan_escape_body(TSLexer *lexer, uint8_t quote) {
  int32_t c = lexer->lookahead;
  switch (c) {
  case 'a':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't':
  case 'v':
  case '/':
  case '\\':
    advance(lexer);
    return true;
  case '"':
  case '\'':
    if (c != quote) {
      return false;
    }
    advance(lexer);
    return true;
  case 'u':
    advance(lexer);
    return take_digits(lexer, 4, is_hex);
  case 'U':
    advance(lexer);
    return take_digits(lexer, 8, is_hex);
  case 'x':
    if (quote != '\'') {
      return false;
    }
    advance(lexer);
    return take_digits(lexer, 2, is_hex);
  default:
    if (quote == '\'' && is_octal(c)) {
      return take_digits(lexer, 3, is_octal);
    }
    return false;
  }
}

static bool scan_string_part(Scanner *scanner, TSLexer *lexer, const bool *valid_symbols) {
  Delimiter top = scanner->stack[scanner->depth - 1];
  bool has_content = false;

  for (;;) {
    if (lexer->eof(lexer)) {
      break;
    }
    int32_t c = lexer->lookahead;

    if (c == '\n' && !top.multiline) {
      break;
    }

    if (c == '\\') {
      advance(lexer);
      unsigned hashes = 0;
      while (hashes < top.hashes && lexer->lookahead == '#') {
        advance(lexer);
        hashes++;
      }
      if (hashes < top.hashes) {
        // Fewer `#` than the opening used: in a raw string this backslash is plain text.
        has_content = true;
        lexer->mark_end(lexer);
        continue;
      }
      if (has_content) {
        break;
      }
      if (lexer->lookahead == '(' && valid_symbols[INTERPOLATION_START]) {
        advance(lexer);
        lexer->mark_end(lexer);
        lexer->result_symbol = INTERPOLATION_START;
        return true;
      }
      if (valid_symbols[ESCAPE_SEQUENCE] && scan_escape_body(lexer, top.quote)) {
        lexer->mark_end(lexer);
        lexer->result_symbol = ESCAPE_SEQUENCE;
        return true;
      }
      return false;
    }

    if (c == top.quote) {
      advance(lexer);
      unsigned quotes = 1;
      if (top.multiline) {
        while (quotes < 3 && lexer->lookahead == top.quote) {
          advance(lexer);
          quotes++;
        }
        if (quotes < 3) {
          has_content = true;
          lexer->mark_end(lexer);
          continue;
        }
      }
      unsigned hashes = 0;
      while (hashes < top.hashes && lexer->lookahead == '#') {
        advance(lexer);
        hashes++;
      }
      if (hashes < top.hashes) {
        has_content = true;
        lexer->mark_end(lexer);
        continue;
      }
      if (has_content) {
        break;
      }
      if (!valid_symbols[STRING_END]) {
        return false;
      }
      lexer->mark_end(lexer);
      scanner->depth--;
      lexer->result_symbol = STRING_END;
      return true;
    }

    advance(lexer);
    has_content = true;
    lexer->mark_end(lexer);
  }

  if (has_content && valid_symbols[STRING_CONTENT]) {
    lexer->result_symbol = STRING_CONTENT;
    return true;
  }
  return false;
}

static bool scan_string_start(Scanner *scanner, TSLexer *lexer) {
  unsigned hashes = 0;
  while (lexer->lookahead == '#') {
    advance(lexer);
    hashes++;
  }
  int32_t quote = lexer->lookahead;
  if ((quote != '"' && quote != '\'') || hashes > UINT8_MAX || scanner->depth >= MAX_DEPTH) {
    return false;
  }
  advance(lexer);
  // Until a third quote shows up, the token is the single quote: `""` is an empty string.
  lexer->mark_end(lexer);
  bool multiline = false;
  if (lexer->lookahead == quote) {
    advance(lexer);
    if (lexer->lookahead == quote) {
      advance(lexer);
      lexer->mark_end(lexer);
      // The opening triple quote must end its line; the line break itself is content.
      if (lexer->lookahead == '\r') {
        advance(lexer);
      }
      if (lexer->lookahead != '\n') {
        return false;
      }
      multiline = true;
    }
  }
  Delimiter d = {(uint8_t)quote, multiline, (uint8_t)hashes};
  scanner->stack[scanner->depth++] = d;
  lexer->result_symbol = STRING_START;
  return true;
}

static bool scan_attribute_text(TSLexer *lexer) {
  unsigned depth = 0;
  bool consumed = false;
  for (;;) {
    if (lexer->eof(lexer)) {
      return false;
    }
    int32_t c = lexer->lookahead;
    if (c == ')' && depth == 0) {
      break;
    }
    if (c == '(' || c == '[' || c == '{') {
      depth++;
    } else if (c == ')' || c == ']' || c == '}') {
      if (depth == 0) {
        return false;
      }
      depth--;
    } else if (c == '"' || c == '\'') {
      // A bracket inside a quoted attribute value does not count towards the balance.
      int32_t quote = c;
      advance(lexer);
      while (!lexer->eof(lexer) && lexer->lookahead != quote && lexer->lookahead != '\n') {
        if (lexer->lookahead == '\\') {
          advance(lexer);
          if (lexer->eof(lexer)) {
            return false;
          }
        }
        advance(lexer);
      }
      if (lexer->lookahead != quote) {
        return false;
      }
    }
    advance(lexer);
    consumed = true;
  }
  lexer->mark_end(lexer);
  lexer->result_symbol = ATTRIBUTE_TEXT;
  return consumed;
}

void *tree_sitter_cue_external_scanner_create(void) {
  Scanner *scanner = calloc(1, sizeof(Scanner));
  return scanner;
}

void tree_sitter_cue_external_scanner_destroy(void *payload) { free(payload); }

unsigned tree_sitter_cue_external_scanner_serialize(void *payload, char *buffer) {
  Scanner *scanner = (Scanner *)payload;
  unsigned size = 0;
  for (unsigned i = 0; i < scanner->depth; i++) {
    buffer[size++] = (char)scanner->stack[i].quote;
    buffer[size++] = (char)scanner->stack[i].multiline;
    buffer[size++] = (char)scanner->stack[i].hashes;
  }
  return size;
}

void tree_sitter_cue_external_scanner_deserialize(void *payload, const char *buffer,
                                                  unsigned length) {
  Scanner *scanner = (Scanner *)payload;
  scanner->depth = 0;
  for (unsigned i = 0; i + 2 < length && scanner->depth < MAX_DEPTH; i += 3) {
    Delimiter d = {(uint8_t)buffer[i], (uint8_t)buffer[i + 1], (uint8_t)buffer[i + 2]};
    scanner->stack[scanner->depth++] = d;
  }
}

bool tree_sitter_cue_external_scanner_scan(void *payload, TSLexer *lexer,
                                           const bool *valid_symbols) {
  Scanner *scanner = (Scanner *)payload;
  if (valid_symbols[ERROR_SENTINEL]) {
    return false;
  }

  bool in_string = valid_symbols[STRING_CONTENT] || valid_symbols[STRING_END] ||
                   valid_symbols[ESCAPE_SEQUENCE] || valid_symbols[INTERPOLATION_START];
  if (in_string) {
    if (scanner->depth == 0) {
      return false;
    }
    return scan_string_part(scanner, lexer, valid_symbols);
  }

  if (valid_symbols[ATTRIBUTE_TEXT]) {
    return scan_attribute_text(lexer);
  }

  for (;;) {
    int32_t c = lexer->lookahead;
    bool newline_is_token = c == '\n' && valid_symbols[NEWLINE];
    bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\n' || c == 0xFEFF;
    if (!blank || newline_is_token) {
      break;
    }
    skip(lexer);
  }

  if (valid_symbols[NEWLINE] && lexer->lookahead == '\n') {
    advance(lexer);
    lexer->mark_end(lexer);
    lexer->result_symbol = NEWLINE;
    return true;
  }

  if (valid_symbols[STRING_START]) {
    return scan_string_start(scanner, lexer);
  }
  return false;
}
