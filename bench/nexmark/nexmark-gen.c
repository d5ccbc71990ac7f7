/* nexmark-gen — Nexmark person/auction/bid events as NDJSON, seeded and deterministic.
 *
 * Follows the Nexmark generator (Apache Beam's / nexmark-flink's GeneratorConfig and
 * Person/Auction/BidGenerator): out of every 50 events 1 is a person, 3 are auctions and 46 are
 * bids; ids start at 1000 (categories at 10); bids go to a "hot" auction half the time and come
 * from a "hot" bidder 3 times out of 4; prices are 100 * 10^(6 u) cents, rounded; events are
 * stamped `rate` per second of event time from `start`. Records are flat JSON objects with a
 * `type` ("person" | "auction" | "bid") and that kind's Nexmark columns (camelCase as in
 * Nexmark), `dateTime` in ms since the epoch, and `extra` padding to Nexmark's average sizes
 * (person ~200 B, auction ~500 B, bid ~100 B).
 *
 * usage: nexmark-gen [-n EVENTS] [-s SEED] [-r EVENTS_PER_S] [-t START_MS] > events.ndjson */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_PERSON_ID 1000
#define FIRST_AUCTION_ID 1000
#define FIRST_CATEGORY_ID 10
#define PERSON_PROPORTION 1
#define AUCTION_PROPORTION 3
#define BID_PROPORTION 46
#define TOTAL_PROPORTION (PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION)
#define NUM_CATEGORIES 5
#define HOT_AUCTION_RATIO 2
#define HOT_BIDDER_RATIO 4
#define HOT_SELLER_RATIO 4
#define NUM_ACTIVE_PEOPLE 1000
#define NUM_IN_FLIGHT_AUCTIONS 100
#define PERSON_ID_LEAD 10
#define AUCTION_ID_LEAD 10

static uint64_t rng;

static uint64_t next64(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int64_t below(int64_t n) { return n <= 0 ? 0 : (int64_t)(next64() % (uint64_t)n); }
static double unit(void) { return (double)(next64() >> 11) / 9007199254740992.0; }

static int64_t last_person(int64_t id)
{
    int64_t epoch = id / TOTAL_PROPORTION, off = id % TOTAL_PROPORTION;
    if (off >= PERSON_PROPORTION) off = PERSON_PROPORTION - 1;
    return epoch * PERSON_PROPORTION + off;
}

static int64_t last_auction(int64_t id)
{
    int64_t epoch = id / TOTAL_PROPORTION, off = id % TOTAL_PROPORTION;
    if (off < PERSON_PROPORTION) {
        epoch--;
        off = AUCTION_PROPORTION - 1;
    } else if (off >= PERSON_PROPORTION + AUCTION_PROPORTION) {
        off = AUCTION_PROPORTION - 1;
    } else {
        off -= PERSON_PROPORTION;
    }
    return epoch * AUCTION_PROPORTION + off;
}

static int64_t next_person(int64_t id)
{
    int64_t people = last_person(id) + 1, active = people < NUM_ACTIVE_PEOPLE ? people : NUM_ACTIVE_PEOPLE;
    return people - active + below(active + PERSON_ID_LEAD);
}

static int64_t next_auction(int64_t id)
{
    int64_t max = last_auction(id), min = max - NUM_IN_FLIGHT_AUCTIONS > 0 ? max - NUM_IN_FLIGHT_AUCTIONS : 0;
    return min + below(max - min + 1 + AUCTION_ID_LEAD);
}

static int64_t price(void) { return (int64_t)llround(pow(10.0, unit() * 6) * 100.0); }

static void word(char *out, int min, int max)
{
    int n = min + (int)below(max - min + 1);
    for (int i = 0; i < n; i++) out[i] = (char)('a' + below(26));
    out[n] = 0;
}

/* Pads the record to about `target` bytes with lowercase letters in "extra". */
static void extra(char *out, size_t have, size_t target)
{
    size_t n = have + 12 < target ? target - have - 12 : 0;
    for (size_t i = 0; i < n; i++) out[i] = (char)('a' + below(26));
    out[n] = 0;
}

static const char *const first_names[] = {"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"};
static const char *const last_names[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"};
static const char *const states[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const cities[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"};
static const char *const channels[] = {"Google", "Facebook", "Baidu", "Apple"};
#define PICK(a) a[below((int64_t)(sizeof a / sizeof *a))]

int main(int argc, char **argv)
{
    int64_t n = 100000, rate = 10000, start = 1700000000000LL;
    uint64_t seed = 42;
    int c;
    while ((c = getopt(argc, argv, "n:s:r:t:")) != -1) {
        switch (c) {
        case 'n': n = strtoll(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'r': rate = strtoll(optarg, NULL, 10); break;
        case 't': start = strtoll(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: nexmark-gen [-n EVENTS] [-s SEED] [-r EVENTS_PER_S] [-t START_MS]\n");
            return 2;
        }
    }
    if (n < 0 || rate <= 0) {
        fprintf(stderr, "nexmark-gen: -n must be >= 0 and -r > 0\n");
        return 2;
    }
    rng = seed;
    static char line[2048], pad[1024], w1[32], w2[64];
    for (int64_t id = 0; id < n; id++) {
        int64_t ts = start + id * 1000 / rate, off = id % TOTAL_PROPORTION;
        int len;
        if (off < PERSON_PROPORTION) {
            int64_t pid = last_person(id) + FIRST_PERSON_ID;
            const char *fn = PICK(first_names), *ln = PICK(last_names);
            word(w1, 3, 8);
            len = snprintf(line, sizeof line,
                           "{\"type\":\"person\",\"id\":%" PRId64 ",\"name\":\"%s %s\",\"emailAddress\":\"%s@%s.com\","
                           "\"creditCard\":\"%04d %04d %04d %04d\",\"city\":\"%s\",\"state\":\"%s\",\"dateTime\":%" PRId64,
                           pid, fn, ln, w1, ln, (int)below(10000), (int)below(10000), (int)below(10000),
                           (int)below(10000), PICK(cities), PICK(states), ts);
            extra(pad, (size_t)len, 200);
        } else if (off < PERSON_PROPORTION + AUCTION_PROPORTION) {
            int64_t aid = last_auction(id) + FIRST_AUCTION_ID;
            int64_t seller = below(HOT_SELLER_RATIO) > 0
                                 ? (last_person(id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
                                 : next_person(id);
            int64_t initial = price(), reserve = initial + price();
            int64_t expires = ts + 1000 + below(10 * 1000);
            word(w1, 5, 12);
            word(w2, 20, 40);
            len = snprintf(line, sizeof line,
                           "{\"type\":\"auction\",\"id\":%" PRId64 ",\"itemName\":\"%s\",\"description\":\"%s\","
                           "\"initialBid\":%" PRId64 ",\"reserve\":%" PRId64 ",\"dateTime\":%" PRId64
                           ",\"expires\":%" PRId64 ",\"seller\":%" PRId64 ",\"category\":%d",
                           aid, w1, w2, initial, reserve, ts, expires, seller + FIRST_PERSON_ID,
                           FIRST_CATEGORY_ID + (int)below(NUM_CATEGORIES));
            extra(pad, (size_t)len, 500);
        } else {
            int64_t auction = below(HOT_AUCTION_RATIO) > 0
                                  ? (last_auction(id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
                                  : next_auction(id);
            int64_t bidder = below(HOT_BIDDER_RATIO) > 0
                                 ? (last_person(id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
                                 : next_person(id);
            int ch = (int)below(4);
            len = snprintf(line, sizeof line,
                           "{\"type\":\"bid\",\"auction\":%" PRId64 ",\"bidder\":%" PRId64 ",\"price\":%" PRId64
                           ",\"channel\":\"%s\",\"url\":\"https://www.nexmark.com/%s/item.htm?query=%d\",\"dateTime\":%" PRId64,
                           auction + FIRST_AUCTION_ID, bidder + FIRST_PERSON_ID, price(), channels[ch],
                           channels[ch], (int)below(1000), ts);
            extra(pad, (size_t)len, 100);
        }
        if (printf("%s,\"extra\":\"%s\"}\n", line, pad) < 0) return 1;
    }
    return fflush(stdout) ? 1 : 0;
}
