// Drives the localnet with real @solana/web3.js 1.x and @solana/kit calls; prints one JSON object
// {"web3.js": {call: "ok" | error}, "kit": {...}}. web3.js validates every response against its own
// schemas (superstruct), so a shape it rejects fails here. Usage: node compat.mjs RPC_URL WS_URL FIXTURE.json
import { readFileSync } from "node:fs";
import * as web3 from "@solana/web3.js";
import * as kit from "@solana/kit";

const [url, wsUrl, fixturePath] = process.argv.slice(2);
const fx = JSON.parse(readFileSync(fixturePath, "utf8"));
const results = { "web3.js": {}, kit: {} };
const TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";

function assert(cond, what) { if (!cond) throw new Error(`unexpected answer: ${what}`); }
function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no notification in ${ms} ms`)), ms))]);
}
async function check(sdk, name, fn) {
  try { await fn(); results[sdk][name] = "ok"; } catch (e) { results[sdk][name] = String(e && e.message || e).slice(0, 300); }
}

// ---------------------------------------------------------------- @solana/web3.js 1.x
async function web3Suite() {
  const c = new web3.Connection(url, { commitment: "confirmed", wsEndpoint: wsUrl });
  const payer = web3.Keypair.fromSecretKey(Uint8Array.from(fx.payerSecret));
  const P = (s) => new web3.PublicKey(s);
  const w = (name, fn) => check("web3.js", name, fn);
  await w("getVersion", async () => assert((await c.getVersion())["solana-core"], "version"));
  await w("getSlot", async () => assert((await c.getSlot()) > 0, "slot"));
  await w("getBlockHeight", async () => assert((await c.getBlockHeight()) > 0, "height"));
  await w("getLatestBlockhash", async () => assert((await c.getLatestBlockhash()).blockhash, "blockhash"));
  await w("isBlockhashValid", async () => assert((await c.isBlockhashValid((await c.getLatestBlockhash()).blockhash)).value === true, "valid"));
  await w("getBalance", async () => assert((await c.getBalance(P(fx.altRecipient))) === 2000000, "ALT recipient balance"));
  await w("getAccountInfo", async () => assert((await c.getAccountInfo(P(fx.mint))).data.length === 82, "mint size"));
  await w("getParsedAccountInfo(mint)", async () => {
    const v = (await c.getParsedAccountInfo(P(fx.mint))).value;
    assert(v.data.parsed.type === "mint" && v.data.parsed.info.decimals === fx.decimals, "parsed mint");
  });
  await w("getParsedAccountInfo(token account)", async () => {
    const v = (await c.getParsedAccountInfo(P(fx.tokenAccountA))).value;
    assert(v.data.parsed.info.tokenAmount.uiAmountString === "1.5", "parsed token account");
  });
  await w("getMultipleAccountsInfo", async () => assert((await c.getMultipleAccountsInfo([P(fx.mint), web3.Keypair.generate().publicKey]))[1] === null, "missing is null"));
  await w("getMultipleParsedAccounts", async () => assert((await c.getMultipleParsedAccounts([P(fx.tokenAccountB)])).value[0].data.parsed.info.delegate === fx.payer, "delegate"));
  await w("getProgramAccounts", async () => assert((await c.getProgramAccounts(P(TOKEN), { filters: [{ dataSize: 165 }, { memcmp: { offset: 0, bytes: fx.mint } }] })).length === 3, "three token accounts"));
  await w("getParsedProgramAccounts", async () => assert((await c.getParsedProgramAccounts(P(TOKEN), { filters: [{ memcmp: { offset: 0, bytes: fx.mint } }] })).length === 3, "parsed"));
  await w("getMinimumBalanceForRentExemption", async () => assert((await c.getMinimumBalanceForRentExemption(165)) === 2039280, "rent"));
  await w("getFeeForMessage", async () => {
    const { blockhash } = await c.getLatestBlockhash();
    const msg = new web3.TransactionMessage({ payerKey: payer.publicKey, recentBlockhash: blockhash, instructions: [web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: payer.publicKey, lamports: 1 })] }).compileToV0Message();
    assert((await c.getFeeForMessage(msg)).value === 5000, "fee");
  });
  await w("requestAirdrop+confirmTransaction", async () => {
    const kp = web3.Keypair.generate();
    const sig = await c.requestAirdrop(kp.publicKey, 1e9);
    const bh = await c.getLatestBlockhash();
    assert(!(await c.confirmTransaction({ signature: sig, ...bh })).value.err, "airdrop confirmed");
  });
  let sentSig;
  await w("sendAndConfirmTransaction", async () => {
    const tx = new web3.Transaction().add(web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: web3.Keypair.generate().publicKey, lamports: 1e6 }));
    sentSig = await web3.sendAndConfirmTransaction(c, tx, [payer]);
  });
  await w("simulateTransaction", async () => {
    const { blockhash } = await c.getLatestBlockhash();
    const msg = new web3.TransactionMessage({ payerKey: payer.publicKey, recentBlockhash: blockhash, instructions: [web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: P(fx.altRecipient), lamports: 7 })] }).compileToV0Message();
    const tx = new web3.VersionedTransaction(msg); tx.sign([payer]);
    const r = await c.simulateTransaction(tx, { accounts: { addresses: [fx.altRecipient], encoding: "base64" } });
    assert(r.value.err === null && r.value.accounts[0].lamports === 2000007, "simulated post balance");
  });
  await w("simulateTransaction(unsigned, replaceRecentBlockhash)", async () => {
    const msg = new web3.TransactionMessage({ payerKey: payer.publicKey, recentBlockhash: "11111111111111111111111111111111", instructions: [web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: P(fx.altRecipient), lamports: 7 })] }).compileToV0Message();
    const r = await c.simulateTransaction(new web3.VersionedTransaction(msg), { sigVerify: false, replaceRecentBlockhash: true });
    assert(r.value.err === null && r.value.unitsConsumed > 0, "unsigned simulation");
  });
  await w("getSignatureStatuses", async () => assert((await c.getSignatureStatuses([fx.legacySignature])).value[0].confirmationStatus === "finalized", "status"));
  await w("getTransaction(v0)", async () => {
    const t = await c.getTransaction(fx.v0Signature, { maxSupportedTransactionVersion: 0 });
    assert(t.meta.loadedAddresses.writable[0].toBase58() === fx.altRecipient && t.meta.postBalances.length === 3, "loaded addresses");
    assert(t.meta.logMessages.length > 0, "logs");
  });
  await w("getParsedTransaction(v0)", async () => {
    const t = await c.getParsedTransaction(fx.v0Signature, { maxSupportedTransactionVersion: 0 });
    assert(t.transaction.message.accountKeys.some((k) => k.pubkey.toBase58() === fx.altRecipient && k.source === "lookupTable"), "parsed keys");
  });
  await w("getParsedTransaction(token balances)", async () => {
    const t = await c.getParsedTransaction(fx.mintToSignature, { maxSupportedTransactionVersion: 0 });
    const keys = t.transaction.message.accountKeys.map((k) => k.pubkey.toBase58());
    const post = t.meta.postTokenBalances.find((b) => keys[b.accountIndex] === fx.tokenAccountA);
    const pre = t.meta.preTokenBalances.find((b) => keys[b.accountIndex] === fx.tokenAccountA);
    assert(post.uiTokenAmount.uiAmountString === "1.5" && pre.uiTokenAmount.amount === "0" && post.mint === fx.mint, "token balances");
  });
  await w("getParsedTransaction(inner instructions)", async () => {
    const t = await c.getParsedTransaction(fx.ataSignature, { maxSupportedTransactionVersion: 0 });
    const inner = t.meta.innerInstructions[0].instructions.map((i) => i.programId.toBase58());
    assert(inner.includes(TOKEN) && inner.includes("11111111111111111111111111111111"), `inner ${inner}`);
  });
  await w("getParsedTransaction(parsed instructions)", async () => {
    const mint = await c.getParsedTransaction(fx.mintToSignature, { maxSupportedTransactionVersion: 0 });
    const ix = mint.transaction.message.instructions[0];
    assert(ix.program === "spl-token" && ix.parsed.type === "mintTo" && ix.parsed.info.amount === "1500000", "mintTo");
    const legacy = await c.getParsedTransaction(fx.legacySignature, { maxSupportedTransactionVersion: 0 });
    const [tr, memo] = legacy.transaction.message.instructions;
    assert(tr.parsed.type === "transfer" && tr.parsed.info.lamports === 1e6 && memo.program === "spl-memo" && memo.parsed === "psyche rewards", "transfer + memo");
  });
  await w("getSignaturesForAddress(before/until/limit)", async () => {
    const all = await c.getSignaturesForAddress(payer.publicKey);
    assert(all.length >= 5, `${all.length} signatures`);
    const page = await c.getSignaturesForAddress(payer.publicKey, { limit: 2, before: all[0].signature });
    assert(page.length === 2 && page[0].signature === all[1].signature, "before page");
    const until = await c.getSignaturesForAddress(payer.publicKey, { until: all[2].signature });
    assert(until.length === 2, "until");
    assert(all.some((s) => s.memo === "[14] psyche rewards"), "memo of the memo transaction");
  });
  await w("getAddressLookupTable", async () => assert((await c.getAddressLookupTable(P(fx.lookupTable))).value.state.addresses[0].toBase58() === fx.altRecipient, "table"));
  await w("getEpochInfo", async () => assert((await c.getEpochInfo()).absoluteSlot > 0, "epoch info"));
  await w("getEpochSchedule", async () => assert((await c.getEpochSchedule()).slotsPerEpoch > 0, "schedule"));
  await w("getGenesisHash", async () => assert((await c.getGenesisHash()).length >= 32, "genesis"));
  await w("getClusterNodes", async () => assert((await c.getClusterNodes()).length === 1, "one node"));
  await w("getSlotLeader", async () => assert((await c.getSlotLeader()).length >= 32, "leader"));
  await w("getSlotLeaders", async () => assert((await c.getSlotLeaders(1, 3)).length === 3, "leaders"));
  await w("getLeaderSchedule", async () => assert(Object.keys(await c.getLeaderSchedule()).length === 1, "schedule"));
  await w("getVoteAccounts", async () => assert(Array.isArray((await c.getVoteAccounts()).current), "votes"));
  await w("getRecentPrioritizationFees", async () => assert((await c.getRecentPrioritizationFees()).length > 0, "fees"));
  await w("getRecentPerformanceSamples", async () => assert((await c.getRecentPerformanceSamples(5)).length > 0, "samples"));
  const slot = (await c.getTransaction(fx.v0Signature, { maxSupportedTransactionVersion: 0 }).catch(() => null))?.slot;
  await w("getBlock", async () => assert((await c.getBlock(slot, { maxSupportedTransactionVersion: 0 })).transactions.some((t) => t.transaction.signatures[0] === fx.v0Signature), "block txs"));
  await w("getParsedBlock", async () => assert((await c.getParsedBlock(slot, { maxSupportedTransactionVersion: 0 })).transactions.length >= 1, "parsed block"));
  await w("getBlocks", async () => assert((await c.getBlocks(slot - 2, slot)).includes(slot), "blocks"));
  await w("getBlocksWithLimit", async () => { const r = await c._rpcRequest("getBlocksWithLimit", [slot, 2]); assert(r.result[0] === slot, "blocks with limit"); });
  await w("getBlockTime", async () => assert((await c.getBlockTime(slot)) > 1.6e9, "block time"));
  await w("getFirstAvailableBlock", async () => assert((await c.getFirstAvailableBlock()) >= 0, "first block"));
  await w("getMinimumLedgerSlot", async () => assert((await c.getMinimumLedgerSlot()) >= 0, "min slot"));
  await w("getSupply", async () => assert((await c.getSupply()).value.total > 0, "supply"));
  await w("getTransactionCount", async () => assert((await c.getTransactionCount()) >= 5, "tx count"));
  await w("getInflationGovernor", async () => assert((await c.getInflationGovernor()).initial === 0, "governor"));
  await w("getInflationRate", async () => assert((await c.getInflationRate()).total === 0, "rate"));
  await w("getLargestAccounts", async () => assert((await c.getLargestAccounts()).value.length > 0, "largest"));
  await w("getBlockProduction", async () => assert(Object.keys((await c.getBlockProduction()).value.byIdentity).length === 1, "production"));
  await w("getStakeMinimumDelegation", async () => assert((await c.getStakeMinimumDelegation()).value >= 1, "stake min"));
  await w("getTokenAccountBalance", async () => assert((await c.getTokenAccountBalance(P(fx.tokenAccountA))).value.uiAmountString === "1.5", "balance"));
  await w("getTokenAccountsByOwner(mint)", async () => assert((await c.getTokenAccountsByOwner(payer.publicKey, { mint: P(fx.mint) })).value.length === 1, "by mint"));
  await w("getTokenAccountsByOwner(programId)", async () => assert((await c.getTokenAccountsByOwner(P(fx.ownerB), { programId: P(TOKEN) })).value[0].pubkey.toBase58() === fx.tokenAccountB, "by program"));
  await w("getParsedTokenAccountsByOwner", async () => assert((await c.getParsedTokenAccountsByOwner(payer.publicKey, { mint: P(fx.mint) })).value[0].account.data.parsed.info.tokenAmount.amount === "1500000", "parsed by owner"));
  await w("getTokenAccountsByDelegate", async () => { const r = await c._rpcRequest("getTokenAccountsByDelegate", [fx.payer, { mint: fx.mint }, { encoding: "jsonParsed" }]); assert(r.result.value[0].pubkey === fx.tokenAccountB, "by delegate"); });
  await w("getTokenSupply", async () => assert((await c.getTokenSupply(P(fx.mint))).value.amount === "1750000", "supply"));
  await w("getTokenLargestAccounts", async () => assert((await c.getTokenLargestAccounts(P(fx.mint))).value[0].address.toBase58() === fx.tokenAccountA, "largest"));
  await w("getInflationReward", async () => assert((await c.getInflationReward([payer.publicKey]))[0] === null, "no reward"));
  await w("getBlockCommitment", async () => { const r = await c._rpcRequest("getBlockCommitment", [slot]); assert(r.result.totalStake === 0, "commitment"); });
  await w("getHighestSnapshotSlot (validator error)", async () => { const r = await c._rpcRequest("getHighestSnapshotSlot", []); assert(r.error && r.error.code === -32008, "No snapshot error"); });
  // ---- subscriptions
  await w("onSignature (already confirmed)", async () => {
    await withTimeout(new Promise((res) => c.onSignature(fx.legacySignature, (r) => res(r))), 5000, "onSignature");
  });
  await w("onRootChange", async () => { let id; await withTimeout(new Promise((res) => { id = c.onRootChange((r) => res(r)); }), 5000, "onRootChange"); await c.removeRootChangeListener(id); });
  await w("onSlotChange", async () => { let id; await withTimeout(new Promise((res) => { id = c.onSlotChange((s) => res(s)); }), 5000, "onSlotChange"); await c.removeSlotChangeListener(id); });
  const dest = web3.Keypair.generate().publicKey;
  const accountSeen = new Promise((res) => c.onAccountChange(dest, (a) => res(a), { commitment: "confirmed" }));
  const logsSeen = new Promise((res) => c.onLogs(dest, (l) => res(l), "confirmed"));
  const programSeen = new Promise((res) => c.onProgramAccountChange(web3.SystemProgram.programId, (a) => { if (a.accountId.equals(dest)) res(a); }, { commitment: "confirmed" }));
  await new Promise((r) => setTimeout(r, 500));
  let sigSeen;
  await w("sendTransaction+onSignature", async () => {
    const { blockhash } = await c.getLatestBlockhash();
    const tx = new web3.Transaction({ recentBlockhash: blockhash, feePayer: payer.publicKey }).add(web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: dest, lamports: 3e6 }));
    tx.sign(payer);
    const sig = await c.sendRawTransaction(tx.serialize());
    sigSeen = withTimeout(new Promise((res) => c.onSignature(sig, (r) => res(r))), 5000, "onSignature");
    await sigSeen;
  });
  await w("onAccountChange", async () => assert((await withTimeout(accountSeen, 5000, "onAccountChange")).lamports === 3e6, "account"));
  await w("onLogs(mentions)", async () => assert((await withTimeout(logsSeen, 5000, "onLogs")).logs.length > 0, "logs"));
  await w("onProgramAccountChange", async () => assert((await withTimeout(programSeen, 5000, "onProgramAccountChange")).accountInfo.lamports === 3e6, "program"));
  c._rpcWebSocket.close();
}

// ---------------------------------------------------------------- @solana/kit
async function kitSuite() {
  const rpc = kit.createSolanaRpc(url);
  const subs = kit.createSolanaRpcSubscriptions(wsUrl);
  const k = (name, fn) => check("kit", name, fn);
  const A = kit.address;
  const signer = await kit.createKeyPairSignerFromBytes(Uint8Array.from(fx.payerSecret));
  await k("getEpochInfo", async () => assert((await rpc.getEpochInfo().send()).absoluteSlot > 0n, "epoch"));
  await k("getBalance", async () => assert((await rpc.getBalance(A(fx.altRecipient)).send()).value === 2000000n, "balance"));
  await k("getAccountInfo(jsonParsed)", async () => assert((await rpc.getAccountInfo(A(fx.mint), { encoding: "jsonParsed" }).send()).value.data.parsed.type === "mint", "mint"));
  await k("getMultipleAccounts", async () => assert((await rpc.getMultipleAccounts([A(fx.mint)], { encoding: "base64" }).send()).value[0].owner === TOKEN, "owner"));
  await k("getProgramAccounts(jsonParsed)", async () => assert((await rpc.getProgramAccounts(A(TOKEN), { encoding: "jsonParsed", filters: [{ memcmp: { offset: 0n, bytes: fx.mint, encoding: "base58" } }] }).send()).length === 3, "gpa"));
  await k("getTokenAccountsByOwner", async () => assert((await rpc.getTokenAccountsByOwner(A(fx.payer), { mint: A(fx.mint) }, { encoding: "jsonParsed" }).send()).value.length === 1, "by owner"));
  await k("getTokenAccountsByDelegate", async () => assert((await rpc.getTokenAccountsByDelegate(A(fx.payer), { programId: A(TOKEN) }, { encoding: "jsonParsed" }).send()).value[0].pubkey === fx.tokenAccountB, "by delegate"));
  await k("getTokenAccountBalance", async () => assert((await rpc.getTokenAccountBalance(A(fx.tokenAccountB)).send()).value.amount === "250000", "balance"));
  await k("getTokenSupply", async () => assert((await rpc.getTokenSupply(A(fx.mint)).send()).value.decimals === fx.decimals, "supply"));
  await k("getTokenLargestAccounts", async () => assert((await rpc.getTokenLargestAccounts(A(fx.mint)).send()).value.length === 3, "largest"));
  await k("getSignaturesForAddress", async () => assert((await rpc.getSignaturesForAddress(A(fx.altRecipient), { limit: 10 }).send())[0].signature === fx.v0Signature, "sigs"));
  await k("getTransaction(jsonParsed)", async () => assert((await rpc.getTransaction(fx.v0Signature, { encoding: "jsonParsed", maxSupportedTransactionVersion: 0 }).send()).meta.logMessages.length > 0, "tx"));
  await k("getTransaction(inner instructions)", async () => assert((await rpc.getTransaction(fx.ataSignature, { encoding: "json", maxSupportedTransactionVersion: 0 }).send()).meta.innerInstructions[0].instructions.length >= 2, "inner"));
  await k("getBlock", async () => { const t = await rpc.getTransaction(fx.v0Signature, { maxSupportedTransactionVersion: 0 }).send(); assert((await rpc.getBlock(t.slot, { maxSupportedTransactionVersion: 0 }).send()).transactions.length >= 1, "block"); });
  await k("getRecentPrioritizationFees", async () => assert(Array.isArray(await rpc.getRecentPrioritizationFees().send()), "fees"));
  await k("getGenesisHash", async () => assert((await rpc.getGenesisHash().send()).length >= 32, "genesis"));
  await k("getIdentity", async () => assert((await rpc.getIdentity().send()).identity.length >= 32, "identity"));
  await k("getSupply", async () => assert((await rpc.getSupply().send()).value.total > 0n, "supply"));
  await k("getBlockProduction", async () => assert((await rpc.getBlockProduction().send()).value.range.lastSlot > 0n, "production"));
  await k("minimumLedgerSlot", async () => assert((await rpc.minimumLedgerSlot().send()) >= 0n, "min slot"));
  await k("getMaxRetransmitSlot", async () => assert((await rpc.getMaxRetransmitSlot().send()) > 0n, "retransmit"));
  await k("getHealth", async () => assert((await rpc.getHealth().send()) === "ok", "health"));
  await k("getVersion", async () => assert((await rpc.getVersion().send())["solana-core"], "version"));
  await k("getSlot", async () => assert((await rpc.getSlot().send()) > 0n, "slot"));
  await k("getBlockHeight", async () => assert((await rpc.getBlockHeight().send()) > 0n, "height"));
  await k("isBlockhashValid", async () => { const { value } = await rpc.getLatestBlockhash().send(); assert((await rpc.isBlockhashValid(value.blockhash).send()).value === true, "valid"); });
  await k("getSignatureStatuses", async () => assert((await rpc.getSignatureStatuses([fx.v0Signature]).send()).value[0].confirmationStatus === "finalized", "status"));
  await k("getMinimumBalanceForRentExemption", async () => assert((await rpc.getMinimumBalanceForRentExemption(82n).send()) === 1461600n, "rent"));
  await k("getEpochSchedule", async () => assert((await rpc.getEpochSchedule().send()).slotsPerEpoch > 0n, "schedule"));
  await k("getClusterNodes", async () => assert((await rpc.getClusterNodes().send()).length === 1, "nodes"));
  await k("getSlotLeader", async () => assert((await rpc.getSlotLeader().send()).length >= 32, "leader"));
  await k("getSlotLeaders", async () => assert((await rpc.getSlotLeaders(1n, 2).send()).length === 2, "leaders"));
  await k("getLeaderSchedule", async () => assert(Object.keys(await rpc.getLeaderSchedule().send()).length === 1, "schedule"));
  await k("getVoteAccounts", async () => assert((await rpc.getVoteAccounts().send()).current.length === 0, "votes"));
  await k("getInflationGovernor", async () => assert((await rpc.getInflationGovernor().send()).initial === 0, "governor"));
  await k("getInflationRate", async () => assert((await rpc.getInflationRate().send()).total === 0, "rate"));
  await k("getRecentPerformanceSamples", async () => assert((await rpc.getRecentPerformanceSamples(3).send()).length >= 1, "samples"));
  await k("getLargestAccounts", async () => assert((await rpc.getLargestAccounts().send()).value.length > 0, "largest"));
  await k("getStakeMinimumDelegation", async () => assert((await rpc.getStakeMinimumDelegation().send()).value >= 1n, "stake"));
  await k("getTransactionCount", async () => assert((await rpc.getTransactionCount().send()) >= 5n, "count"));
  await k("getFirstAvailableBlock", async () => assert((await rpc.getFirstAvailableBlock().send()) >= 0n, "first"));
  await k("getBlocks/getBlocksWithLimit/getBlockTime", async () => {
    const slot = (await rpc.getSignatureStatuses([fx.v0Signature]).send()).value[0].slot;
    assert((await rpc.getBlocks(slot - 1n, slot).send()).includes(slot), "blocks");
    assert((await rpc.getBlocksWithLimit(slot, 1).send())[0] === slot, "with limit");
    assert((await rpc.getBlockTime(slot).send()) > 1600000000n, "time");
  });
  await k("getHighestSnapshotSlot (validator error)", async () => {
    try { await rpc.getHighestSnapshotSlot().send(); } catch (e) { assert(String(e.context?.__code ?? e.message).includes("32008") || /snapshot/i.test(e.message), e.message); return; }
    throw new Error("expected the validator's No snapshot error");
  });
  await k("requestAirdrop", async () => assert((await rpc.requestAirdrop((await kit.generateKeyPairSigner()).address, kit.lamports(1000000n)).send()).length > 60, "signature"));
  await k("getMaxShredInsertSlot", async () => assert((await rpc.getMaxShredInsertSlot().send()) > 0n, "shred insert"));
  // a transfer built, signed and confirmed entirely by kit (getEpochInfo + signatureNotifications)
  const dest = (await kit.generateKeyPairSigner()).address;
  const abort = new AbortController();
  const logsIter = await subs.logsNotifications({ mentions: [dest] }, { commitment: "confirmed" }).subscribe({ abortSignal: abort.signal });
  const progIter = await subs.programNotifications(A("11111111111111111111111111111111"), { commitment: "confirmed", encoding: "base64" }).subscribe({ abortSignal: abort.signal });
  const acctIter = await subs.accountNotifications(dest, { commitment: "confirmed", encoding: "base64" }).subscribe({ abortSignal: abort.signal });
  const firstOf = async (iter, pred) => { for await (const n of iter) { if (pred(n)) return n; } };
  const logsSeen = firstOf(logsIter, () => true);
  const progSeen = firstOf(progIter, (n) => n.value.pubkey === dest);
  const acctSeen = firstOf(acctIter, () => true);
  let sig;
  await k("sendAndConfirmTransactionFactory", async () => {
    const { value: latest } = await rpc.getLatestBlockhash().send();
    const data = new Uint8Array(12); const dv = new DataView(data.buffer); dv.setUint32(0, 2, true); dv.setBigUint64(4, 4000000n, true);
    const ix = { programAddress: A("11111111111111111111111111111111"), accounts: [{ address: signer.address, role: kit.AccountRole.WRITABLE_SIGNER, signer }, { address: dest, role: kit.AccountRole.WRITABLE }], data };
    const msg = kit.pipe(kit.createTransactionMessage({ version: 0 }), (m) => kit.setTransactionMessageFeePayerSigner(signer, m),
      (m) => kit.setTransactionMessageLifetimeUsingBlockhash(latest, m), (m) => kit.appendTransactionMessageInstruction(ix, m));
    const signed = await kit.signTransactionMessageWithSigners(msg);
    sig = kit.getSignatureFromTransaction(signed);
    await withTimeout(kit.sendAndConfirmTransactionFactory({ rpc, rpcSubscriptions: subs })(signed, { commitment: "confirmed" }), 15000, "sendAndConfirm");
    assert((await rpc.getBalance(dest).send()).value === 4000000n, "landed");
  });
  await k("simulateTransaction(unsigned)", async () => {
    const { value: latest } = await rpc.getLatestBlockhash().send();
    const data = new Uint8Array(12); const dv = new DataView(data.buffer); dv.setUint32(0, 2, true); dv.setBigUint64(4, 5n, true);
    const ix = { programAddress: A("11111111111111111111111111111111"), accounts: [{ address: signer.address, role: kit.AccountRole.WRITABLE_SIGNER }, { address: dest, role: kit.AccountRole.WRITABLE }], data };
    const msg = kit.pipe(kit.createTransactionMessage({ version: 0 }), (m) => kit.setTransactionMessageFeePayer(signer.address, m),
      (m) => kit.setTransactionMessageLifetimeUsingBlockhash(latest, m), (m) => kit.appendTransactionMessageInstruction(ix, m));
    const wire = kit.getBase64EncodedWireTransaction(kit.compileTransaction(msg));
    const r = await rpc.simulateTransaction(wire, { encoding: "base64", sigVerify: false, replaceRecentBlockhash: true }).send();
    assert(r.value.err === null && r.value.unitsConsumed > 0n, `simulation ${JSON.stringify(r.value.err)}`);
  });
  await k("getFeeForMessage", async () => {
    const { value: latest } = await rpc.getLatestBlockhash().send();
    const msg = kit.pipe(kit.createTransactionMessage({ version: 0 }), (m) => kit.setTransactionMessageFeePayer(signer.address, m),
      (m) => kit.setTransactionMessageLifetimeUsingBlockhash(latest, m));
    const bytes = kit.getCompiledTransactionMessageEncoder().encode(kit.compileTransactionMessage(msg));
    const b64 = Buffer.from(bytes).toString("base64");
    assert((await rpc.getFeeForMessage(b64).send()).value === 5000n, "fee");
  });
  await k("logsNotifications(mentions)", async () => assert((await withTimeout(logsSeen, 5000, "logs")).value.signature === sig, "logs signature"));
  await k("programNotifications", async () => assert((await withTimeout(progSeen, 5000, "program")).value.account.lamports === 4000000n, "program lamports"));
  await k("accountNotifications", async () => assert((await withTimeout(acctSeen, 5000, "account")).value.lamports === 4000000n, "account lamports"));
  await k("signatureNotifications (already confirmed)", async () => {
    const it = await subs.signatureNotifications(fx.legacySignature, { commitment: "confirmed" }).subscribe({ abortSignal: abort.signal });
    await withTimeout(firstOf(it, () => true), 5000, "signatureNotifications");
  });
  await k("slotNotifications", async () => { const it = await subs.slotNotifications().subscribe({ abortSignal: abort.signal }); await withTimeout(firstOf(it, () => true), 5000, "slot"); });
  abort.abort();
}

await web3Suite().catch((e) => { results["web3.js"]["(suite)"] = String(e && e.stack || e); });
await kitSuite().catch((e) => { results.kit["(suite)"] = String(e && e.stack || e); });
console.log(JSON.stringify(results));
process.exit(0);
