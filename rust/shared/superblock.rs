// SPDX-License-Identifier: GPL-2.0

//! The superblock: one per member device, at [`SB_OFFSETS`] (a primary and a backup copy).
//!
//! Every member carries the whole filesystem description (uuid, member table, options,
//! journal position, btree root); `seq` orders copies, and a mount uses the newest one.
//! Decoding checks every field and reports the first bad one by name; nothing read from disk
//! is used as a length or offset before it has been checked.

use crate::shared::crc32c::block_crc;
use crate::shared::layout::{layout, offset, Field};
use crate::shared::options::{Opt, OptError, Options, MAX_REPLICAS, SB_OPTION_SLOTS};
use crate::shared::target::{Label, Target};

/// Bytes in a superblock.
pub const SB_SIZE: usize = 4096;
/// Byte offsets of the primary and the backup superblock on every member.
pub const SB_OFFSETS: [u64; 2] = [4096, 8192];
/// Bytes at the start of a member that hold no bucket: boot area and both superblocks.
pub const RESERVED_BYTES: u64 = 12288;
/// Magic number: "BUCKETFS" in little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"BUCKETFS");
/// On-disk format version: 2 since btree leaves and journal entries hold typed key records
/// (`bkey.rs`) and the namespace lives in the btree; version 1 images are refused.
pub const VERSION: u32 = 2;
/// Most members a filesystem may have.
pub const MAX_MEMBERS: usize = 16;
/// Smallest and largest bucket, in bytes (powers of two).
pub const MIN_BUCKET_SIZE: u32 = 4096;
/// See [`MIN_BUCKET_SIZE`].
pub const MAX_BUCKET_SIZE: u32 = 16 << 20;
/// Fewest allocatable buckets a member must have after its metadata areas.
pub const MIN_DATA_BUCKETS: u64 = 16;
/// Size of metadata blocks (bucket table blocks, journal blocks, btree nodes).
pub const BLOCK_SIZE: usize = 4096;
/// Member flag: issue discards on this member.
pub const MEMBER_DISCARD: u32 = 1;
/// Member flag: the member was removed (`bucketfs device remove`, `dev-N/remove`). Its table
/// entry is [`Member::removed`]: every other field zero, so the index stays taken (node
/// pointers name members by index, and indices are never renumbered) while no device is
/// required, read, written or allocated on, and no node pointer may name it.
pub const MEMBER_REMOVED: u32 = 2;

/// Journal size bounds (see [`Member::layout`]): at least this many bytes...
pub const MIN_JOURNAL_BYTES: u64 = 256 << 10;
/// ... and at least this many buckets ...
pub const MIN_JOURNAL_BUCKETS: u64 = 8;
/// ... and, above the minimum, at most this many bytes.
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Entries in one bucket table block (see `bucket_table.rs`).
pub const TABLE_ENTRIES_PER_BLOCK: u64 = ((BLOCK_SIZE - 48) / 4) as u64;

layout! {
    /// One member device, as described in the member table.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Member(size: 64) {
        /// The member's own uuid.
        0x00 => pub uuid: [u8; 16],
        /// Buckets on the device, counting the reserved and metadata ones.
        0x10 => pub nbuckets: u64,
        /// Bucket size in bytes.
        0x18 => pub bucket_size: u32,
        /// First bucket of the bucket table.
        0x1c => pub table_start: u32,
        /// Buckets of the bucket table.
        0x20 => pub table_buckets: u32,
        /// First bucket of the journal.
        0x24 => pub journal_start: u32,
        /// Buckets of the journal.
        0x28 => pub journal_buckets: u32,
        /// First allocatable bucket (just after the journal).
        0x2c => pub first_bucket: u32,
        /// `MEMBER_*` flags.
        0x30 => pub flags: u32,
    }
}

/// Why a member's layout could not be built or is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberField {
    /// `bucket_size` is not a power of two in range.
    BucketSize,
    /// `nbuckets` is zero, or too large for the byte size to fit in 64 bits.
    NBuckets,
    /// The bucket table does not start after the reserved area, or is too small.
    Table,
    /// The journal is empty or does not follow the bucket table.
    Journal,
    /// `first_bucket` does not follow the journal, or leaves too few buckets.
    FirstBucket,
    /// Unknown flag bits.
    Flags,
    /// A removed entry ([`MEMBER_REMOVED`]) with another field or flag set.
    Removed,
}

impl MemberField {
    /// The field's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            MemberField::BucketSize => "bucket_size",
            MemberField::NBuckets => "nbuckets",
            MemberField::Table => "bucket table",
            MemberField::Journal => "journal",
            MemberField::FirstBucket => "first_bucket",
            MemberField::Flags => "flags",
            MemberField::Removed => "removed member entry",
        }
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a / b + (a % b != 0) as u64
}

/// Journal buckets [`Member::layout`] gives a member of `nbuckets` buckets of `bs` bytes: a
/// sixty-fourth of the device, at least [`MIN_JOURNAL_BUCKETS`] buckets and
/// [`MIN_JOURNAL_BYTES`], and at most [`MAX_JOURNAL_BYTES`] (unless the minimum is more).
///
/// The cap bounds what `format` writes and what a mount may have to read: a journal only
/// needs to hold the entries written since the last commit, which does not grow with the
/// device (bcachefs bounds its journal the same way: `nbuckets / 256`, clamped between 8
/// buckets and the smaller of 1024 buckets and 512 MiB, raised later to 8192 buckets and
/// 8 GiB). Below 64 GiB the sixty-fourth is under the cap, so smaller members are laid out
/// as before the cap existed.
pub fn journal_buckets_for(nbuckets: u64, bs: u64) -> u64 {
    // `layout` checked the bucket size; this only keeps a division by zero out of the code.
    let bs = bs.max(1);
    let min = MIN_JOURNAL_BUCKETS.max(div_ceil(MIN_JOURNAL_BYTES, bs));
    let max = min.max(MAX_JOURNAL_BYTES / bs);
    // Not `clamp`, which asserts `min <= max` (true here: `max` is at least `min`).
    (nbuckets / 64).max(min).min(max)
}

impl Member {
    /// Lays out a member of `device_bytes` bytes with `bucket_size`-byte buckets.
    pub fn layout(
        device_bytes: u64,
        bucket_size: u32,
        uuid: [u8; 16],
    ) -> Result<Member, MemberField> {
        if !bucket_size.is_power_of_two()
            || !(MIN_BUCKET_SIZE..=MAX_BUCKET_SIZE).contains(&bucket_size)
        {
            return Err(MemberField::BucketSize);
        }
        let bs = bucket_size as u64;
        let nbuckets = device_bytes / bs;
        let table_start = div_ceil(RESERVED_BYTES, bs);
        let table_buckets = div_ceil(
            div_ceil(nbuckets, TABLE_ENTRIES_PER_BLOCK) * BLOCK_SIZE as u64,
            bs,
        );
        let journal_start = table_start + table_buckets;
        let journal_buckets = journal_buckets_for(nbuckets, bs);
        let first_bucket = journal_start + journal_buckets;
        if nbuckets < first_bucket + MIN_DATA_BUCKETS || nbuckets > u32::MAX as u64 {
            return Err(MemberField::NBuckets);
        }
        Ok(Member {
            uuid,
            nbuckets,
            bucket_size,
            table_start: table_start as u32,
            table_buckets: table_buckets as u32,
            journal_start: journal_start as u32,
            journal_buckets: journal_buckets as u32,
            first_bucket: first_bucket as u32,
            flags: MEMBER_DISCARD,
        })
    }

    /// The table entry of a removed member: [`MEMBER_REMOVED`] and nothing else (no uuid: a
    /// device that was this member is no member of the filesystem any more, and may be added
    /// again).
    pub const fn removed() -> Member {
        Member {
            flags: MEMBER_REMOVED,
            ..Member::ZERO
        }
    }

    /// Whether this entry is a removed member's ([`MEMBER_REMOVED`]).
    pub fn is_removed(&self) -> bool {
        self.flags & MEMBER_REMOVED != 0
    }

    /// Checks the member's fields against each other. A removed entry must be exactly
    /// [`Member::removed`].
    pub fn validate(&self) -> Result<(), MemberField> {
        if self.is_removed() {
            return if *self == Member::removed() {
                Ok(())
            } else {
                Err(MemberField::Removed)
            };
        }
        let bs = self.bucket_size;
        if !bs.is_power_of_two() || !(MIN_BUCKET_SIZE..=MAX_BUCKET_SIZE).contains(&bs) {
            return Err(MemberField::BucketSize);
        }
        if self.nbuckets == 0 || self.nbuckets > u32::MAX as u64 {
            return Err(MemberField::NBuckets);
        }
        let bs = bs as u64;
        let table_needed = div_ceil(
            div_ceil(self.nbuckets, TABLE_ENTRIES_PER_BLOCK) * BLOCK_SIZE as u64,
            bs,
        );
        if (self.table_start as u64) < div_ceil(RESERVED_BYTES, bs)
            || (self.table_buckets as u64) < table_needed
        {
            return Err(MemberField::Table);
        }
        if self.journal_buckets == 0
            || self.journal_start as u64 != self.table_start as u64 + self.table_buckets as u64
        {
            return Err(MemberField::Journal);
        }
        let first = self.journal_start as u64 + self.journal_buckets as u64;
        if self.first_bucket as u64 != first || first + MIN_DATA_BUCKETS > self.nbuckets {
            return Err(MemberField::FirstBucket);
        }
        if self.flags & !MEMBER_DISCARD != 0 {
            return Err(MemberField::Flags);
        }
        Ok(())
    }

    /// Bytes the member occupies: the device must be at least this large.
    pub fn bytes(&self) -> u64 {
        self.nbuckets * self.bucket_size as u64
    }

    /// Byte offset of `bucket`.
    pub fn bucket_offset(&self, bucket: u64) -> u64 {
        bucket * self.bucket_size as u64
    }

    /// Blocks of the member's journal area.
    pub fn journal_blocks(&self) -> u64 {
        self.journal_buckets as u64 * self.bucket_size as u64 / BLOCK_SIZE as u64
    }

    /// Whether discards are enabled for this member.
    pub fn discard(&self) -> bool {
        self.flags & MEMBER_DISCARD != 0
    }
}

layout! {
    /// A pointer to one copy of a btree node: a bucket on a member.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NodePtr(size: 8) {
        /// Member index.
        0x0 => pub member: u32,
        /// Bucket on that member.
        0x4 => pub bucket: u32,
    }
}

layout! {
    /// Where the btree root is: its level and the buckets holding its copies.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BtreeRoot(size: 48) {
        /// 0 for a leaf.
        0x00 => pub level: u8,
        /// Copies in `ptrs`.
        0x01 => pub nr_ptrs: u8,
        /// Write sequence number of the root node.
        0x08 => pub node_seq: u64,
        /// The copies, on distinct members.
        0x10 => pub ptrs: [NodePtr; MAX_REPLICAS as usize],
    }
}

/// Most btree levels.
pub const MAX_BTREE_LEVEL: u8 = 8;

/// Why a node pointer read from disk cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtrError {
    /// The member index is not below `nr_members`.
    Member,
    /// The bucket lies in the member's metadata area (reserved area, superblocks, bucket
    /// table, journal): below `first_bucket`.
    Metadata,
    /// The bucket lies beyond the member's last bucket.
    Beyond,
    /// The member was removed ([`MEMBER_REMOVED`]).
    Removed,
}

impl PtrError {
    /// What is wrong, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            PtrError::Member => "no such member",
            PtrError::Metadata => "in the metadata area",
            PtrError::Beyond => "beyond the end of the member",
            PtrError::Removed => "on a removed member",
        }
    }
}

/// Checks that `p` points into the allocatable buckets (`first_bucket..nbuckets`) of one of
/// `members`, not a removed one: every node pointer read from disk goes through this before it
/// is used.
pub fn check_ptr(members: &[Member], p: NodePtr) -> Result<(), PtrError> {
    let m = members.get(p.member as usize).ok_or(PtrError::Member)?;
    if m.is_removed() {
        Err(PtrError::Removed)
    } else if p.bucket < m.first_bucket {
        Err(PtrError::Metadata)
    } else if p.bucket as u64 >= m.nbuckets {
        Err(PtrError::Beyond)
    } else {
        Ok(())
    }
}

/// The decoded superblock.
///
/// Large (about 1.5 KiB): the kernel keeps it on the heap and passes it by reference (see
/// [`Superblock::decode_into`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Filesystem uuid, the same on every member.
    pub uuid: [u8; 16],
    /// Write sequence number; the newest copy wins.
    pub seq: u64,
    /// Which member of the table this device is.
    pub member_index: u32,
    /// Entries used in `members`.
    pub nr_members: u32,
    /// Stored option values.
    pub options: Options,
    /// Sequence number the next journal entry gets; entries below it that are still in the
    /// journal are replayed.
    pub journal_seq: u64,
    /// Where the entry with sequence number `journal_seq` starts (if there is one): a block
    /// offset within the journal area, the same on every member (every member holds a copy
    /// of the journal, each entry at the same offset). Below every member's
    /// [`Member::journal_blocks`].
    pub journal_offset: u64,
    /// The btree root.
    pub root: BtreeRoot,
    /// The member table.
    pub members: [Member; MAX_MEMBERS],
    /// Each member's label (by member index; none for entries from `nr_members` on).
    pub labels: [Label; MAX_MEMBERS],
}

layout! {
    /// The superblock as it lies on disk: [`Superblock`]'s fields with the magic number, the
    /// format version and the checksum, and the options as slots.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SbDisk(size: SB_SIZE) {
        /// [`MAGIC`].
        0x000 => pub magic: u64,
        /// [`VERSION`].
        0x008 => pub version: u32,
        /// CRC-32C of the [`SB_SIZE`] bytes with this field taken as zero.
        0x00c => pub crc: u32,
        /// [`Superblock::uuid`].
        0x010 => pub uuid: [u8; 16],
        /// [`Superblock::seq`].
        0x020 => pub seq: u64,
        /// [`Superblock::member_index`].
        0x028 => pub member_index: u32,
        /// [`Superblock::nr_members`].
        0x02c => pub nr_members: u32,
        /// [`Superblock::options`], each option in its `sb_slot`; unused slots are zero.
        0x030 => pub options: [u32; SB_OPTION_SLOTS],
        /// [`Superblock::journal_seq`].
        0x070 => pub journal_seq: u64,
        /// [`Superblock::root`].
        0x078 => pub root: BtreeRoot,
        /// [`Superblock::journal_offset`]: bytes that superblocks written before this field
        /// existed have as zero, which means the start of the journal area, where those
        /// journals started; so the format version did not change.
        0x0a8 => pub journal_offset: u64,
        /// [`Superblock::members`]; entries from `nr_members` on are zero.
        0x100 => pub members: [Member; MAX_MEMBERS],
        /// [`Superblock::labels`]: bytes that superblocks written before labels existed have
        /// as zero, which is no label; so the format version did not change.
        0x500 => pub labels: [Label; MAX_MEMBERS],
        /// The label of a label `metadata_target` (zero for any other target): beside the
        /// option slots, which hold the target's code.
        0x700 => pub metadata_target_label: Label,
    }
}

/// Offset of the superblock's checksum.
const OFF_CRC: usize = offset!(SbDisk, crc);

/// Why a superblock was refused; [`SbError::field`] names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbError {
    /// Fewer than [`SB_SIZE`] bytes.
    Short,
    /// Not a bucketfs superblock.
    Magic,
    /// A format version this code does not know.
    Version(u32),
    /// The checksum does not match.
    Checksum,
    /// `journal_offset` is not below every member's journal blocks.
    JournalOffset(u64),
    /// `nr_members` is zero or above [`MAX_MEMBERS`].
    NrMembers(u32),
    /// `member_index` is not below `nr_members`.
    MemberIndex(u32),
    /// A member table entry is wrong.
    Member(u32, MemberField),
    /// A member's label is not a label.
    Label(u32),
    /// Two members share a uuid.
    DuplicateMember(u32),
    /// A stored option is out of range, or the options break a rule between them.
    Option(Opt),
    /// The btree root is wrong (level, copies, or a pointer outside the allocatable buckets).
    Root,
    /// A sequence number (superblock, journal, root node) at or above [`MAX_SEQ`], where
    /// counting on would overflow.
    Sequence,
}

/// Sequence numbers stay below this, so every `+ 1` on them is safe. A superblock with a
/// sequence number (its own, `journal_seq`, the root's `node_seq`) at or above it is refused,
/// so nothing may write one: the writer checks with [`Superblock::validate`] first.
pub const MAX_SEQ: u64 = 1 << 62;

impl SbError {
    /// The field that is wrong, for dmesg and the tool.
    pub fn field(&self) -> &'static str {
        match self {
            SbError::Short => "size",
            SbError::Magic => "magic",
            SbError::Version(_) => "version",
            SbError::Checksum => "checksum",
            SbError::NrMembers(_) => "nr_members",
            SbError::MemberIndex(_) => "member_index",
            SbError::Member(_, f) => f.name(),
            SbError::Label(_) => "label",
            SbError::DuplicateMember(_) => "member uuid",
            SbError::Option(o) => o.desc().name,
            SbError::Root => "btree root",
            SbError::JournalOffset(_) => "journal_offset",
            SbError::Sequence => "sequence number",
        }
    }
}

impl Member {
    /// All zero (an unused entry of the member table).
    pub const ZERO: Member = Member {
        uuid: [0; 16],
        nbuckets: 0,
        bucket_size: 0,
        table_start: 0,
        table_buckets: 0,
        journal_start: 0,
        journal_buckets: 0,
        first_bucket: 0,
        flags: 0,
    };
}

impl Superblock {
    /// All zero, options at their defaults: not a valid superblock, only a slot to decode into
    /// (a constant, so a slot on the heap is set up from it without a copy on the stack).
    pub const EMPTY: Superblock = Superblock {
        uuid: [0; 16],
        seq: 0,
        member_index: 0,
        nr_members: 0,
        options: Options::DEFAULT,
        journal_seq: 0,
        journal_offset: 0,
        root: BtreeRoot {
            level: 0,
            nr_ptrs: 0,
            node_seq: 0,
            ptrs: [NodePtr {
                member: 0,
                bucket: 0,
            }; MAX_REPLICAS as usize],
        },
        members: [Member::ZERO; MAX_MEMBERS],
        labels: [Label::NONE; MAX_MEMBERS],
    };

    /// The member this copy was read from.
    pub fn this_member(&self) -> &Member {
        &self.members[self.member_index as usize]
    }

    /// The used part of the member table.
    pub fn member_table(&self) -> &[Member] {
        &self.members[..self.nr_members as usize]
    }

    /// The bucket size of the first member not removed (a new member's default: the
    /// decoder accepts no superblock whose members are all removed).
    pub fn default_bucket_size(&self) -> u32 {
        self.member_table()
            .iter()
            .find(|m| !m.is_removed())
            .map_or(0, |m| m.bucket_size)
    }

    /// Members of the table that are not removed: the devices the filesystem has.
    pub fn live_members(&self) -> u32 {
        self.member_table()
            .iter()
            .filter(|m| !m.is_removed())
            .count() as u32
    }

    /// The labels of the used part of the member table.
    pub fn member_labels(&self) -> &[Label] {
        &self.labels[..(self.nr_members as usize).min(MAX_MEMBERS)]
    }

    /// Checks the decoded fields against each other.
    pub fn validate(&self) -> Result<(), SbError> {
        if self.seq >= MAX_SEQ || self.journal_seq >= MAX_SEQ || self.root.node_seq >= MAX_SEQ {
            return Err(SbError::Sequence);
        }
        if self.nr_members == 0 || self.nr_members as usize > MAX_MEMBERS {
            return Err(SbError::NrMembers(self.nr_members));
        }
        // A copy is written only to a member that is not removed (so at least one is not).
        if self.member_index >= self.nr_members
            || self.members[self.member_index as usize].is_removed()
        {
            return Err(SbError::MemberIndex(self.member_index));
        }
        for (i, m) in self.member_table().iter().enumerate() {
            m.validate().map_err(|f| SbError::Member(i as u32, f))?;
            if m.is_removed() {
                // No label: nothing may place copies on it.
                if !self.labels[i].is_none() {
                    return Err(SbError::Label(i as u32));
                }
                continue;
            }
            if self.members[..i].iter().any(|o| o.uuid == m.uuid) {
                return Err(SbError::DuplicateMember(i as u32));
            }
            if !self.labels[i].is_valid() {
                return Err(SbError::Label(i as u32));
            }
        }
        if self
            .member_table()
            .iter()
            .any(|m| !m.is_removed() && self.journal_offset >= m.journal_blocks())
        {
            return Err(SbError::JournalOffset(self.journal_offset));
        }
        // Copies go to members that are there: no more replicas than those, and no `dev-N`
        // target naming a removed one.
        if self.options.get(Opt::MetadataReplicas) > self.live_members() {
            return Err(SbError::Option(Opt::MetadataReplicas));
        }
        if let Target::Member(m) = self.options.target() {
            if self.members.get(m as usize).is_some_and(|m| m.is_removed()) {
                return Err(SbError::Option(Opt::MetadataTarget));
            }
        }
        if let Err(e) = self.options.validate(self.nr_members) {
            let opt = match e {
                OptError::RequiredAboveReplicas { .. } => Opt::MetadataReplicasRequired,
                OptError::NoSuchMember { .. } | OptError::NotANumber => Opt::MetadataTarget,
                _ => Opt::MetadataReplicas,
            };
            return Err(SbError::Option(opt));
        }
        let root = &self.root;
        if root.level > MAX_BTREE_LEVEL || root.nr_ptrs == 0 || root.nr_ptrs as u32 > MAX_REPLICAS {
            return Err(SbError::Root);
        }
        let ptrs = &root.ptrs[..root.nr_ptrs as usize];
        for (i, p) in ptrs.iter().enumerate() {
            if check_ptr(self.member_table(), *p).is_err() {
                return Err(SbError::Root);
            }
            if ptrs[..i].iter().any(|o| o.member == p.member) {
                return Err(SbError::Root);
            }
        }
        Ok(())
    }

    /// Encodes into `buf` (at least [`SB_SIZE`] bytes), with the checksum, as member
    /// `member_index`'s copy (no copy of `self` on the stack: superblock writes run deep).
    pub fn encode_as(&self, member_index: u32, buf: &mut [u8]) {
        self.encode(buf);
        let b = &mut buf[..SB_SIZE];
        member_index.write(&mut b[offset!(SbDisk, member_index)..]);
        block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
    }

    /// Encodes into `buf` (at least [`SB_SIZE`] bytes), with the checksum.
    ///
    /// Field by field where [`SbDisk`] puts each, straight from `self` (not through a whole
    /// `SbDisk` value first): encoding runs deep in the kernel's superblock writes, where a
    /// second copy of the superblock on the stack is too much.
    pub fn encode(&self, buf: &mut [u8]) {
        let b = &mut buf[..SB_SIZE];
        macro_rules! disk {
            ($f:ident, $v:expr) => {
                Field::write($v, &mut b[offset!(SbDisk, $f)..])
            };
        }
        b.fill(0);
        disk!(magic, &MAGIC);
        disk!(version, &VERSION);
        disk!(uuid, &self.uuid);
        disk!(seq, &self.seq);
        disk!(member_index, &self.member_index);
        disk!(nr_members, &self.nr_members);
        disk!(options, &self.options.to_slots());
        disk!(journal_seq, &self.journal_seq);
        disk!(root, &self.root);
        disk!(journal_offset, &self.journal_offset);
        disk!(members, &self.members);
        disk!(labels, &self.labels);
        disk!(metadata_target_label, &self.options.target_label());
        block_crc(b, OFF_CRC).write(&mut b[OFF_CRC..]);
    }

    /// Decodes and validates a superblock (into a value: host tools; the kernel decodes into
    /// a slot of its own with [`Superblock::decode_into`]).
    pub fn decode(buf: &[u8]) -> Result<Superblock, SbError> {
        let mut sb = Superblock::EMPTY;
        Superblock::decode_into(buf, &mut sb)?;
        Ok(sb)
    }

    /// Decodes and validates a superblock into `sb`, in place: no copy of the superblock on
    /// the stack (decoding runs deep in the kernel's mount and commit call chains). On an
    /// error `sb` holds part of the refused copy: the caller must not use it. Not inlined, so
    /// that [`Superblock::decode`]'s frame holds the one copy it returns.
    #[inline(never)]
    pub fn decode_into(buf: &[u8], sb: &mut Superblock) -> Result<(), SbError> {
        if buf.len() < SB_SIZE {
            return Err(SbError::Short);
        }
        let b = &buf[..SB_SIZE];
        // Field by field where the declaration puts each (not a whole `SbDisk` first).
        macro_rules! disk {
            ($f:ident) => {
                Field::read(&b[offset!(SbDisk, $f)..])
            };
            ($f:ident, $into:expr) => {
                Field::read_into($into, &b[offset!(SbDisk, $f)..])
            };
        }
        let magic: u64 = disk!(magic);
        if magic != MAGIC {
            return Err(SbError::Magic);
        }
        let version: u32 = disk!(version);
        if version != VERSION {
            return Err(SbError::Version(version));
        }
        let crc: u32 = disk!(crc);
        if crc != block_crc(b, OFF_CRC) {
            return Err(SbError::Checksum);
        }
        sb.options = Options::from_disk(&disk!(options), &disk!(metadata_target_label))
            .map_err(SbError::Option)?;
        disk!(uuid, &mut sb.uuid);
        disk!(seq, &mut sb.seq);
        disk!(member_index, &mut sb.member_index);
        disk!(nr_members, &mut sb.nr_members);
        disk!(journal_seq, &mut sb.journal_seq);
        disk!(journal_offset, &mut sb.journal_offset);
        disk!(root, &mut sb.root);
        disk!(members, &mut sb.members);
        disk!(labels, &mut sb.labels);
        // Entries past the member table are not looked at, as the table's own are not.
        let used = sb.nr_members as usize;
        for l in sb.labels.iter_mut().skip(used) {
            *l = Label::NONE;
        }
        sb.validate()
    }
}

/// Formats a uuid as the usual 8-4-4-4-12 lowercase hex.
pub struct UuidFmt<'a>(pub &'a [u8; 16]);

impl core::fmt::Display for UuidFmt<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
