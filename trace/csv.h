// CSV as RFC 4180 has it, for the tables trace/ writes (trace exports, sweep
// results) and the CSV inputs it reads (route traces, popularity files): a
// field holding a comma, a double quote, CR or LF is quoted, with inner
// quotes doubled. A sweep row's policy spec ("lfu:decay=0.9,period=10") is
// one such field.
//
//   out += CsvRow({label, policy, absl::StrCat(hits)});   // "a,\"lfu:x=1,y=2\",7\n"
//   MOESTREAM_ASSIGN_OR_RETURN(std::vector<std::string> f, SplitCsvRecord(line));
#ifndef MOESTREAM_TRACE_CSV_H_
#define MOESTREAM_TRACE_CSV_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moestream::trace {

// `field` as it must appear in a CSV record: unchanged unless it holds a
// comma, a double quote, CR or LF; then quoted, with quotes doubled.
std::string CsvField(std::string_view field);

// The fields joined by commas, each through CsvField, and a final "\n".
std::string CsvRow(std::initializer_list<std::string_view> fields);

// The fields of one record (one line, without its line break). Quoted fields
// lose their quotes and have doubled quotes undoubled. kInvalidArgument for
// a quote that is not closed, or text after a closing quote.
absl::StatusOr<std::vector<std::string>> SplitCsvRecord(std::string_view line);

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_CSV_H_
